"""Latency lookup table (METHOD.md §6): a network's latency is the sum of its blocks' measured latencies.

Blocks are keyed by architecture only (kind, input resolution, channels, stride, kernel,
expand): an INT8 engine runs every bit width below 8 as 8 bits, so bits do not change latency.
The fixed parts of the network (stem, high-resolution branch, fusion + head + classifier) are
blocks too, so the table covers the whole network. Torch-free: the builder lives in ``qnas.export``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qnas.errors import QnasError
from qnas.space import (
    MBConvBlock, SpaceSpec, atomic_write_text, fusion_channels, mbconv_block, mbconv_blocks, stage_resolutions,
)

__all__ = ["Block", "network_blocks", "space_blocks", "LatencyTable", "LatencyTableError", "TABLE_FORMAT"]

TABLE_FORMAT = "qnas-latency-table/1"


class LatencyTableError(QnasError):
    """A latency table is missing, malformed, incomplete or measured on another device."""


@dataclass(frozen=True)
class Block:
    """One measured unit of the network.

    kind: 'stem' | 'mbconv' | 'highres' | 'head'. ``in_hw`` is the block's input resolution,
    ``stage``/``index`` place an MBConv (stage from 1, block index from 0); for a head block
    ``cin`` is the stem resolution's fused channel count and ``cout`` the classes.
    """

    kind: str
    in_hw: tuple[int, int]
    cin: int
    cout: int
    stride: int = 1
    kernel: int = 3
    expand: int = 1

    @property
    def key(self) -> str:
        h, w = self.in_hw
        if self.kind == "mbconv":
            return f"mbconv {h}x{w} c{self.cin}-{self.cout} s{self.stride} k{self.kernel} e{self.expand}"
        return f"{self.kind} {h}x{w} c{self.cin}-{self.cout}"


def _mbconv(block: MBConvBlock, stem_hw: tuple[int, int], stage_hw: list[tuple[int, int]]) -> Block:
    """The block at the resolution it reads: the previous stage's output (the stem's for stage 1)
    for a stage's first block, its own stage's output after that."""
    if block.index > 0:
        hw = stage_hw[block.stage - 1]
    else:
        hw = stem_hw if block.stage == 1 else stage_hw[block.stage - 2]
    return Block("mbconv", hw, block.cin, block.cout, block.stride, block.kernel, block.expand)


def _fixed_blocks(spec: SpaceSpec, height: int, width: int, stem_hw: tuple[int, int]) -> list[Block]:
    c3 = spec.stem_channels[-1]
    return [Block("stem", (height, width), spec.in_channels, c3),
            Block("highres", stem_hw, c3, spec.highres_channels),
            Block("head", stem_hw, fusion_channels(spec), spec.num_classes)]


def network_blocks(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> list[Block]:
    """The blocks a genome's network runs at ``height`` x ``width``."""
    stem_hw, stage_hw = stage_resolutions(spec, height, width)
    stem, highres, head = _fixed_blocks(spec, height, width, stem_hw)
    mbconvs = [_mbconv(b, stem_hw, stage_hw) for b in mbconv_blocks(spec, genome)]
    return [stem, *mbconvs, highres, head]


def space_blocks(spec: SpaceSpec, height: int, width: int) -> list[Block]:
    """Every distinct block any genome of the space can contain (what a table must measure)."""
    stem_hw, stage_hw = stage_resolutions(spec, height, width)
    seen: dict[str, Block] = {}
    for block in _fixed_blocks(spec, height, width, stem_hw):
        seen.setdefault(block.key, block)
    for s in range(1, spec.num_stages + 1):
        for b in range(spec.max_depth):
            for k in spec.kernels:
                for e in spec.expands:
                    block = _mbconv(mbconv_block(spec, s, b, k, e), stem_hw, stage_hw)
                    seen.setdefault(block.key, block)
    return list(seen.values())


@dataclass
class LatencyTable:
    """Measured milliseconds per block key, with the device fingerprint they were measured on."""

    fingerprint: dict[str, Any]
    resolution: tuple[int, int]
    entries: dict[str, float]
    overhead_ms: float = 0.0  # fitted graph overhead, added once per network
    method: dict[str, Any] | None = None

    def predict(self, spec: SpaceSpec, genome: Mapping[str, int]) -> float:
        """Predicted latency (ms) of the genome's network: the sum of its blocks plus the overhead."""
        total = self.overhead_ms
        for block in network_blocks(spec, genome, *self.resolution):
            if block.key not in self.entries:
                raise LatencyTableError(f"the latency table has no entry for block {block.key!r}: it was "
                                        "built for another space or resolution; rebuild it")
            total += self.entries[block.key]
        return total

    def missing(self, spec: SpaceSpec) -> list[Block]:
        return [b for b in space_blocks(spec, *self.resolution) if b.key not in self.entries]

    def check_device(self, current: Mapping[str, Any], force: bool = False) -> None:
        """Refuse a table measured on another device (or with other threads / backend) unless forced."""
        diff = {k: (self.fingerprint.get(k), v) for k, v in current.items() if self.fingerprint.get(k) != v}
        if diff and not force:
            shown = "; ".join(f"{k}: table {a!r}, here {b!r}" for k, (a, b) in diff.items())
            raise LatencyTableError(f"the latency table was measured on another device ({shown}); "
                                    "rebuild it here, or pass --force-lut to use it anyway")

    def to_yaml(self) -> str:
        doc = {"qnas_latency_table": TABLE_FORMAT, "fingerprint": self.fingerprint,
               "resolution": list(self.resolution), "overhead_ms": self.overhead_ms,
               "method": self.method or {}, "entries": dict(self.entries)}
        return yaml.safe_dump(doc, sort_keys=False)

    def write(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(path, self.to_yaml())

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> LatencyTable:
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise LatencyTableError(f"latency table not found: {path}") from None
        except yaml.YAMLError as exc:
            raise LatencyTableError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(doc, dict) or doc.get("qnas_latency_table") != TABLE_FORMAT:
            raise LatencyTableError(f"{path} is not a qnas latency table (format {TABLE_FORMAT!r})")
        try:
            entries = {str(k): float(v) for k, v in (doc.get("entries") or {}).items()}
            return cls(dict(doc["fingerprint"]), tuple(int(v) for v in doc["resolution"]), entries,
                       float(doc.get("overhead_ms", 0.0)), doc.get("method") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise LatencyTableError(f"{path}: malformed latency table ({exc})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)
