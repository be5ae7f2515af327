"""Subnet extraction ("determinize", thesis Algorithm 3-2): elastic layers -> static ones."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from qnas.quant import PACTActivationQuant, PerChannelWeightQuant
from qnas.supernet.blocks import ElasticStage
from qnas.supernet.network import SegNet, Supernet
from qnas.supernet.ops import ElasticBatchNorm2d, ElasticQConv2d

__all__ = ["freeze"]

_ELASTIC_LEAVES = (ElasticQConv2d, ElasticBatchNorm2d)


def _input_channels(net: Supernet, height: int, width: int) -> dict[nn.Module, int]:
    """Channels each elastic leaf sees in the active subnet, recorded on a tiny eval forward."""
    seen: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault(module, args[0].shape[1])

    hooks = [m.register_forward_pre_hook(record) for m in net.modules() if isinstance(m, _ELASTIC_LEAVES)]
    was_training = net.training
    # Quantizers off for this trace, so every conv and BatchNorm is called as a module (the
    # quantized eval path calls the folded conv function instead, which hooks cannot see).
    quantizers = [m for m in net.modules() if isinstance(m, (PACTActivationQuant, PerChannelWeightQuant))]
    enabled = [q.enabled for q in quantizers]
    try:
        net.eval()
        for q in quantizers:
            q.enabled = False
        with torch.no_grad():
            net(torch.zeros(1, net.spec.in_channels, height, width))
    finally:
        for q, flag in zip(quantizers, enabled):
            q.enabled = flag
        net.train(was_training)
        for hook in hooks:
            hook.remove()
    return seen


def _freeze_tree(module: nn.Module, channels: dict[nn.Module, int]) -> nn.Module:
    if isinstance(module, _ELASTIC_LEAVES):
        return module.freeze(channels[module])
    if isinstance(module, ElasticStage):
        module = module.freeze()
    for name, child in list(module.named_children()):
        setattr(module, name, _freeze_tree(child, channels))
    return module


def freeze(supernet: Supernet, genome: Mapping[str, int]) -> SegNet:
    """A static, fake-quantized ``SegNet`` of ``genome``, holding copies of the supernet's weights.

    Its eval-mode output equals the supernet's for the same genome bit for bit. The supernet's
    active genome is restored afterwards; auxiliary heads are not part of the subnet.
    """
    previous = supernet.genome
    supernet.set_genome(genome)
    try:
        channels = _input_channels(supernet, 32, 32)
        # Map the supernet's modules onto the copy's so the recorded widths follow the copy.
        parts = copy.deepcopy(
            {"stem": supernet.stem, "stages": supernet.stages, "highres": supernet.highres,
             "head": supernet.head, "classifier": supernet.classifier, "channels": channels},
        )
    finally:
        supernet.set_genome(previous)
    channels = parts.pop("channels")
    frozen = {name: _freeze_tree(part, channels) for name, part in parts.items()}
    net = SegNet(frozen["stem"], list(frozen["stages"]), frozen["highres"], frozen["head"],
                 frozen["classifier"], upsample=supernet.upsample)
    net.train(supernet.training)
    return net
