"""MACs, parameters and BitOps of a genome, from the genome and the space alone (no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from qnas.space.arch import conv_layers
from qnas.space.spec import SpaceSpec

__all__ = ["Cost", "genome_cost"]


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
    layers = conv_layers(spec, genome, height, width)
    return Cost(
        macs=sum(layer.macs for layer in layers),
        params=sum(layer.params for layer in layers),
        bitops=sum(layer.bitops for layer in layers),
        bitops_searchable=sum(layer.bitops for layer in layers if layer.searchable),
    )
