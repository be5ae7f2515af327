"""The quantization-aware elastic supernet, its blocks and ops, and subnet extraction."""

from qnas.supernet.bn import recalibrate_bn
from qnas.supernet.blocks import ConvBNAct, ElasticStage, MBConv, SeparableConv
from qnas.supernet.freeze import freeze
from qnas.supernet.network import NETWORKS, QuantSettings, SegNet, Supernet, build_supernet, register_network
from qnas.supernet.ops import ElasticBatchNorm2d, ElasticQConv2d, QConv2d, qconv2d

__all__ = [
    "NETWORKS", "ConvBNAct", "ElasticBatchNorm2d", "ElasticQConv2d", "ElasticStage", "MBConv", "QConv2d",
    "QuantSettings", "SegNet", "SeparableConv", "Supernet", "build_supernet", "freeze", "qconv2d", "recalibrate_bn",
    "register_network",
]
