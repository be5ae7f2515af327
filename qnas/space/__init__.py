"""Search space, genomes and policy files. Imports stdlib, numpy and yaml only (never torch)."""

from qnas.space.arch import (
    ConvLayer, MBConvBlock, conv_layers, conv_out_size, fusion_channels, mbconv_block, mbconv_blocks, stage_resolutions,
)
from qnas.space.genome import Gene, Genome, SearchSpace, block_layer_names, fixed_layer_names
from qnas.space.policy import Policy, atomic_write_bytes, atomic_write_text, policy_from_text, policy_to_text, read_policy, write_policy
from qnas.space.spec import SpaceSpec

__all__ = [
    "ConvLayer", "Gene", "Genome", "MBConvBlock", "Policy", "SearchSpace", "SpaceSpec", "atomic_write_bytes", "atomic_write_text",
    "block_layer_names", "conv_layers", "conv_out_size", "fixed_layer_names", "fusion_channels",
    "mbconv_block", "mbconv_blocks", "policy_from_text", "policy_to_text", "read_policy", "stage_resolutions", "write_policy",
]
