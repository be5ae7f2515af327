"""Search space, genomes and policy files. Imports stdlib, numpy and yaml only (never torch)."""

from qnas.space.arch import ConvLayer, conv_layers, conv_out_size, fusion_channels
from qnas.space.genome import Gene, Genome, SearchSpace, block_layer_names, fixed_layer_names
from qnas.space.policy import Policy, atomic_write_bytes, atomic_write_text, policy_from_text, policy_to_text, read_policy, write_policy
from qnas.space.spec import SpaceSpec

__all__ = [
    "ConvLayer", "Gene", "Genome", "Policy", "SearchSpace", "SpaceSpec", "atomic_write_bytes", "atomic_write_text",
    "block_layer_names", "conv_layers", "conv_out_size", "fixed_layer_names", "fusion_channels",
    "policy_from_text", "policy_to_text", "read_policy", "write_policy",
]
