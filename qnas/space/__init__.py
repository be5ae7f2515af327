"""Search space, genomes, policy files and the network plan. Imports stdlib, numpy and yaml only (never torch)."""

from qnas.space.networks import NETWORKS, NetworkFamily, gene_table, network_plan, register_network, space_units
from qnas.space.plan import (
    Add, Concat, Conv, Gene, Input, Op, Output, Plan, PlanBuilder, Resize, Unit, conv_out_size, same_padding,
)
from qnas.space.spec import SpaceSpec
from qnas.space import segnas  # noqa: F401  (registers the default network family)
from qnas.space.genome import Genome, SearchSpace
from qnas.space.policy import Policy, atomic_write_bytes, atomic_write_text, policy_from_text, policy_to_text, read_policy, write_policy

__all__ = [
    "NETWORKS", "Add", "Concat", "Conv", "Gene", "Genome", "Input", "NetworkFamily", "Op", "Output", "Plan",
    "PlanBuilder", "Policy", "Resize", "SearchSpace", "SpaceSpec", "Unit", "atomic_write_bytes", "atomic_write_text",
    "conv_out_size", "gene_table", "network_plan", "policy_from_text", "policy_to_text", "read_policy",
    "register_network", "same_padding", "space_units", "write_policy",
]
