"""MACs, parameters and BitOps of a genome, summed over its plan's convs (no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from qnas.space.networks import network_plan
from qnas.space.spec import SpaceSpec

__all__ = ["Cost", "genome_cost", "weight_memory_bits", "weight_memory_bytes"]


@dataclass(frozen=True)
class Cost:
    """Totals over every conv. ``bitops_searchable`` leaves out layers whose bits are all fixed
    (the classifier); the stem conv counts as searchable because its weight bits are a gene."""

    macs: int
    params: int
    bitops: int
    bitops_searchable: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def genome_cost(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> Cost:
    """BitOps = sum over convs of MACs x weight bits x input-activation bits (METHOD.md §6)."""
    convs = network_plan(spec, genome, height, width).convs()
    return Cost(
        macs=sum(c.macs for c in convs),
        params=sum(c.params for c in convs),
        bitops=sum(c.bitops for c in convs),
        bitops_searchable=sum(c.bitops for c in convs if c.searchable),
    )


def weight_memory_bits(spec: SpaceSpec, genome: Mapping[str, int]) -> int:
    """Weights at their bit widths plus a 32-bit scale and a 32-bit bias per output channel (BatchNorm
    folded): what the deployed network stores."""
    convs = network_plan(spec, genome, 64, 64).convs()
    return sum(c.cout * c.fan_in * c.wbits + 64 * c.cout for c in convs)


def weight_memory_bytes(spec: SpaceSpec, genome: Mapping[str, int]) -> float:
    """``weight_memory_bits`` in bytes: on-chip memory for the weights, the FPGA budget beside BitOps."""
    return weight_memory_bits(spec, genome) / 8
