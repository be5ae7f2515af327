"""Cost models: analytic MACs/params/BitOps (torch-free) and, later, measured latency tables."""

from qnas.cost.bitops import Cost, genome_cost

__all__ = ["Cost", "genome_cost"]
