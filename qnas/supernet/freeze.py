"""Subnet extraction ("determinize", thesis Algorithm 3-2): elastic units -> static ones, by the plan."""

from __future__ import annotations

from collections.abc import Mapping

from qnas.space.networks import NOMINAL_HW, network_plan
from qnas.supernet.network import SegNet, Supernet

__all__ = ["freeze"]


def freeze(supernet: Supernet, genome: Mapping[str, int]) -> SegNet:
    """A static, fake-quantized ``SegNet`` of ``genome``, holding copies of the supernet's weights.

    Each conv of the genome's plan is sliced by the same routine the supernet's forward uses, so
    the frozen model's eval-mode output equals the supernet's for the same genome bit for bit. The
    supernet's active genome is restored afterwards; auxiliary heads are not part of the subnet.
    """
    previous = supernet.genome
    supernet.set_genome(genome)
    try:
        active = supernet.genome
        units = {op.label: supernet.unit(op.label).freeze(op)
                 for op in network_plan(supernet.spec, active, *NOMINAL_HW).convs()}
    finally:
        supernet.set_genome(previous)
    net = SegNet(supernet.spec, active, units).to(next(supernet.parameters()).device)  # on the supernet's device
    net.train(supernet.training)
    return net
