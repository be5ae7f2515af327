"""The architecture family and its choice sets, as plain values (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from qnas.errors import FieldError
from qnas.space.networks import NETWORKS

__all__ = ["SpaceSpec"]


def _check_positive_ints(field: str, values: tuple[int, ...], length: int | None = None) -> None:
    if length is not None and len(values) != length:
        raise FieldError(field, f"needs {length} values, got {len(values)}")
    if not values:
        raise FieldError(field, "must not be empty")
    for v in values:
        if v < 1:
            raise FieldError(field, f"values must be >= 1, got {v}")


def _check_choices(field: str, values: tuple[int, ...], allowed: tuple[int, ...]) -> None:
    if not values:
        raise FieldError(field, "must list at least one choice")
    if len(set(values)) != len(values):
        raise FieldError(field, f"has duplicates: {list(values)}")
    for v in values:
        if v not in allowed:
            raise FieldError(field, f"{v} is not allowed; allowed: {list(allowed)}")


@dataclass(frozen=True)
class SpaceSpec:
    """Widths of the reference architecture (METHOD.md §2) and the searchable choices (§3).

    ``network`` names the family whose plan builder turns these numbers into a network
    (``qnas.space.segnas`` describes the default one).
    """

    num_classes: int = 11
    in_channels: int = 3
    stem_channels: tuple[int, int, int] = (32, 48, 64)
    stem_strides: tuple[int, int, int] = (2, 2, 2)  # 1/8 as in the thesis; small images may want 1/4
    stage_channels: tuple[int, ...] = (64, 96, 128)
    stage_strides: tuple[int, ...] = (1, 2, 2)
    highres_channels: int = 128
    head_channels: tuple[int, int] = (128, 128)
    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (3, 5)
    expands: tuple[int, ...] = (3, 4, 6)
    bits: tuple[int, ...] = (4, 6, 8)
    zoom: tuple[int, ...] = (0,)  # per MBConv block: 0 plain, 1 zoomed depthwise conv (both: a gene per block)
    # which stage outputs feed the head, as bit masks (bit s-1: stage s; the deepest and the mask of all of them
    # required); empty: all of them, no gene
    branches: tuple[int, ...] = ()
    input_bits: int = 8
    classifier_wbits: int = 8
    classifier_abits: int = 8
    upsample: str = "nearest"
    network: str = "segnas"  # the registered network family (qnas.space.networks) that builds the plan

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise FieldError("network", f"{self.network!r} is not registered; registered: {sorted(NETWORKS)}")
        if self.num_classes < 2:
            raise FieldError("num_classes", f"must be >= 2, got {self.num_classes}")
        if self.in_channels < 1:
            raise FieldError("in_channels", f"must be >= 1, got {self.in_channels}")
        _check_positive_ints("stem_channels", self.stem_channels, 3)
        for v in self.stem_strides:
            if v not in (1, 2) or len(self.stem_strides) != 3:
                raise FieldError("stem_strides", f"needs 3 values from [1, 2], got {list(self.stem_strides)}")
        _check_positive_ints("stage_channels", self.stage_channels)
        _check_positive_ints("stage_strides", self.stage_strides, len(self.stage_channels))
        for s in self.stage_strides:
            if s not in (1, 2):
                raise FieldError("stage_strides", f"{s} is not allowed; allowed: [1, 2]")
        if self.highres_channels < 1:
            raise FieldError("highres_channels", f"must be >= 1, got {self.highres_channels}")
        _check_positive_ints("head_channels", self.head_channels, 2)
        _check_choices("depths", self.depths, (1, 2, 3, 4, 5, 6))
        _check_choices("kernels", self.kernels, (1, 3, 5, 7))
        _check_choices("expands", self.expands, (1, 2, 3, 4, 5, 6, 8))
        _check_choices("bits", self.bits, (2, 3, 4, 5, 6, 7, 8))
        _check_choices("zoom", self.zoom, (0, 1))
        if self.branches:
            full = (1 << len(self.stage_channels)) - 1
            deepest = 1 << (len(self.stage_channels) - 1)
            _check_choices("branches", self.branches, tuple(m for m in range(1, full + 1) if m & deepest))
            if full not in self.branches:  # the supernet's head is the largest network's, with every branch
                raise FieldError("branches", f"must include {full} (every stage: bit s-1 is stage s; the deepest "
                                             f"stage always feeds the head), got {list(self.branches)}")
        for name in ("input_bits", "classifier_wbits", "classifier_abits"):
            value = getattr(self, name)
            if not 2 <= value <= 8:
                raise FieldError(name, f"must be between 2 and 8, got {value}")
        if self.upsample not in ("nearest", "bilinear"):
            raise FieldError("upsample", f"{self.upsample!r} is not allowed; allowed: ['nearest', 'bilinear']")
        # Canonical order makes equal specs compare equal whatever order the YAML listed.
        for name in ("depths", "kernels", "expands", "bits", "zoom", "branches"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name))))

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def all_branches(self) -> int:
        """The bit mask of every stage (the head of today's network reads them all)."""
        return (1 << self.num_stages) - 1
