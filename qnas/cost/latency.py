"""Latency lookup table (METHOD.md §6): a network's latency is the sum of its units' measured latencies.

A unit is a group of a plan's operations (a stem, an MBConv block, the high-resolution branch, the
fusion + head + classifier), keyed by its shape (kind, input resolution, channels and the
family's extra parts, e.g. stride, kernel, expand). Units are keyed by architecture only: an INT8
engine runs every bit width below 8 as 8 bits, so bits do not change latency. The fixed parts of
the network are units too, so the table covers the whole network. Torch-free: the builder lives
in ``qnas.export``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qnas.errors import QnasError
from qnas.space.networks import network_plan, space_units
from qnas.space.plan import Unit
from qnas.space.policy import atomic_write_text
from qnas.space.spec import SpaceSpec

__all__ = ["network_blocks", "space_blocks", "LatencyTable", "LatencyTableError", "TABLE_FORMAT"]

TABLE_FORMAT = "qnas-latency-table/1"


class LatencyTableError(QnasError):
    """A latency table is missing, malformed, incomplete or measured on another device."""


def network_blocks(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> list[Unit]:
    """The units a genome's network runs at ``height`` x ``width``."""
    return list(network_plan(spec, genome, height, width).units)


def space_blocks(spec: SpaceSpec, height: int, width: int) -> list[Unit]:
    """Every distinct unit any genome of the space can contain (what a table must measure)."""
    return [unit for unit, _ in space_units(spec, height, width)]


@dataclass
class LatencyTable:
    """Measured milliseconds per unit key, with the device fingerprint they were measured on."""

    fingerprint: dict[str, Any]
    resolution: tuple[int, int]
    entries: dict[str, float]
    overhead_ms: float = 0.0  # fitted graph overhead, added once per network
    method: dict[str, Any] | None = None
    spread: dict[str, float] = field(default_factory=dict)  # per entry: (max - min) / median of its round medians

    def block_sum(self, spec: SpaceSpec, genome: Mapping[str, int]) -> float:
        """The sum of the genome's units' entries (ms), without the overhead."""
        total = 0.0
        for unit in network_blocks(spec, genome, *self.resolution):
            if unit.key not in self.entries:
                raise LatencyTableError(f"the latency table has no entry for block {unit.key!r}: it was "
                                        "built for another space or resolution; rebuild it")
            total += self.entries[unit.key]
        return total

    def predict(self, spec: SpaceSpec, genome: Mapping[str, int]) -> float:
        """Predicted latency (ms) of the genome's network: the sum of its units plus the overhead."""
        total = self.block_sum(spec, genome) + self.overhead_ms
        if not total > 0:
            raise LatencyTableError(f"the latency table predicts {total:.4g} ms for a network: its overhead "
                                    f"({self.overhead_ms} ms) outweighs its blocks; refit or rebuild it")
        return total

    def missing(self, spec: SpaceSpec) -> list[Unit]:
        return [u for u in space_blocks(spec, *self.resolution) if u.key not in self.entries]

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
        if self.spread:
            doc["spread"] = dict(self.spread)
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
        except IsADirectoryError:
            raise LatencyTableError(f"latency table {path} is a folder, not a file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LatencyTableError(f"cannot read latency table {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise LatencyTableError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(doc, dict) or doc.get("qnas_latency_table") != TABLE_FORMAT:
            raise LatencyTableError(f"{path} is not a qnas latency table (format {TABLE_FORMAT!r})")
        try:
            entries = {str(k): float(v) for k, v in (doc.get("entries") or {}).items()}
            spread = {str(k): float(v) for k, v in (doc.get("spread") or {}).items()}
            table = cls(dict(doc["fingerprint"]), tuple(int(v) for v in doc["resolution"]), entries,
                        float(doc.get("overhead_ms", 0.0)), doc.get("method") or {}, spread)
        except (KeyError, TypeError, ValueError) as exc:
            raise LatencyTableError(f"{path}: malformed latency table ({exc})") from None
        if len(table.resolution) != 2 or min(table.resolution) < 1 or not table.entries:
            raise LatencyTableError(f"{path}: malformed latency table (resolution {table.resolution}, "
                                    f"{len(table.entries)} entries)")
        bad = [k for k, v in table.entries.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise LatencyTableError(f"{path}: entry {bad[0]!r} is {table.entries[bad[0]]!r}; every entry must be a "
                                    "positive number of milliseconds")
        if not math.isfinite(table.overhead_ms):
            raise LatencyTableError(f"{path}: overhead_ms is {table.overhead_ms!r}; it must be a finite number")
        return table

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)
