"""The quantization-aware elastic supernet: modules built from the network plan, and subnet extraction."""

from qnas.supernet.blocks import ConvUnit
from qnas.supernet.bn import recalibrate_bn
from qnas.supernet.freeze import freeze
from qnas.supernet.network import (
    MODULE_BUILDERS, QuantSettings, SegNet, Supernet, build_supernet, register_modules, upgrade_state_dict,
)
from qnas.supernet.ops import ElasticBatchNorm2d, ElasticQConv2d, QConv2d, qconv2d

__all__ = [
    "MODULE_BUILDERS", "ConvUnit", "ElasticBatchNorm2d", "ElasticQConv2d", "QConv2d", "QuantSettings", "SegNet",
    "Supernet", "build_supernet", "freeze", "qconv2d", "recalibrate_bn", "register_modules", "upgrade_state_dict",
]
