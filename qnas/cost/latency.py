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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qnas.cost.agreement import mape
from qnas.errors import QnasError
from qnas.space.networks import network_plan, space_units
from qnas.space.plan import Unit
from qnas.space.policy import atomic_write_text
from qnas.space.spec import SpaceSpec

__all__ = ["network_blocks", "space_blocks", "LatencyTable", "LatencyTableError", "TABLE_FORMAT", "OverheadFit",
           "fit_overheads", "choose_fit", "with_overheads", "PER_UNIT_MIN_SAMPLES", "PER_UNIT_GAIN", "UNIT_SHARE_KEPT"]

TABLE_FORMAT = "qnas-latency-table/1"
TABLE_FORMAT_UNITS = "qnas-latency-table/2"  # written when unit_overhead_ms is not 0 (a reader of /1 would ignore it)


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
    # fitted, added once per unit of a network: what timing a unit alone adds to it (a runtime's per-inference
    # cost, each unit's own input and output conversions), which a whole network pays once, not per unit
    unit_overhead_ms: float = 0.0

    def blocks(self, spec: SpaceSpec, genome: Mapping[str, int]) -> list[float]:
        """The entries (ms) of the genome's units, as measured (without either overhead)."""
        entries = []
        for unit in network_blocks(spec, genome, *self.resolution):
            if unit.key not in self.entries:
                raise LatencyTableError(f"the latency table has no entry for block {unit.key!r}: it was "
                                        "built for another space or resolution; rebuild it")
            entries.append(self.entries[unit.key])
        return entries

    def block_sum(self, spec: SpaceSpec, genome: Mapping[str, int]) -> float:
        """The sum of the genome's units' entries (ms), without the overheads."""
        return sum(self.blocks(spec, genome))

    def predict(self, spec: SpaceSpec, genome: Mapping[str, int]) -> float:
        """Predicted latency (ms) of the genome's network: the sum of its units' entries, each plus the unit
        overhead, plus the overhead."""
        entries = self.blocks(spec, genome)
        total = sum(entries) + len(entries) * self.unit_overhead_ms + self.overhead_ms
        if not total > 0:
            raise LatencyTableError(f"the latency table predicts {total:.4g} ms for a network: its overheads "
                                    f"({self.overhead_ms} ms, {self.unit_overhead_ms} ms per unit) outweigh its "
                                    "blocks; refit or rebuild it")
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
        doc = {"qnas_latency_table": TABLE_FORMAT_UNITS if self.unit_overhead_ms else TABLE_FORMAT,
               "fingerprint": self.fingerprint,
               "resolution": list(self.resolution), "overhead_ms": self.overhead_ms,
               "unit_overhead_ms": self.unit_overhead_ms, "method": self.method or {}, "entries": dict(self.entries)}
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
        if not isinstance(doc, dict) or doc.get("qnas_latency_table") not in (TABLE_FORMAT, TABLE_FORMAT_UNITS):
            raise LatencyTableError(f"{path} is not a qnas latency table (format {TABLE_FORMAT!r} or "
                                    f"{TABLE_FORMAT_UNITS!r})")
        try:
            entries = {str(k): float(v) for k, v in (doc.get("entries") or {}).items()}
            spread = {str(k): float(v) for k, v in (doc.get("spread") or {}).items()}
            table = cls(dict(doc["fingerprint"]), tuple(int(v) for v in doc["resolution"]), entries,
                        float(doc.get("overhead_ms", 0.0)), doc.get("method") or {}, spread,
                        float(doc.get("unit_overhead_ms", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise LatencyTableError(f"{path}: malformed latency table ({exc})") from None
        if len(table.resolution) != 2 or min(table.resolution) < 1 or not table.entries:
            raise LatencyTableError(f"{path}: malformed latency table (resolution {table.resolution}, "
                                    f"{len(table.entries)} entries)")
        bad = [k for k, v in table.entries.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise LatencyTableError(f"{path}: entry {bad[0]!r} is {table.entries[bad[0]]!r}; every entry must be a "
                                    "positive number of milliseconds")
        for name in ("overhead_ms", "unit_overhead_ms"):
            if not math.isfinite(getattr(table, name)):
                raise LatencyTableError(f"{path}: {name} is {getattr(table, name)!r}; it must be a finite number")
        smallest = min(table.entries.values())
        if smallest + table.unit_overhead_ms <= 0:
            raise LatencyTableError(f"{path}: unit_overhead_ms {table.unit_overhead_ms} would make its smallest entry "
                                    f"({smallest} ms) cost nothing or less; refit it "
                                    "(qnas latency-check --fit-overhead)")
        return table

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)


PER_UNIT_MIN_SAMPLES = 10  # fewer whole networks than this: only the constant is fitted
PER_UNIT_GAIN = 0.05  # the per-unit model must predict left-out networks this much better (relative MAPE)
UNIT_SHARE_KEPT = 0.1  # a negative per-unit term leaves every entry at least this share of itself


@dataclass(frozen=True)
class OverheadFit:
    """A table's overheads fitted to whole networks by one ``model``: ``overhead_ms`` once per network and
    ``unit_overhead_ms`` once per unit (0 for the constant model); ``loo_mape`` its leave-one-out MAPE and
    ``loo_lowest`` the smallest left-out predicted / measured ratio (None where they cannot be computed);
    ``lowest`` the smallest predicted / measured ratio of the sampled networks under the whole fit."""

    model: str
    overhead_ms: float
    unit_overhead_ms: float
    loo_mape: float | None
    loo_lowest: float | None
    lowest: float


def _constant(sums: np.ndarray, units: np.ndarray, measured: np.ndarray, slope_floor: float) -> tuple[float, float]:
    return float(np.median(measured - sums)), 0.0


def _per_unit(sums: np.ndarray, units: np.ndarray, measured: np.ndarray, slope_floor: float) -> tuple[float, float]:
    """Theil-Sen: the median of the slopes between networks of different sizes (not below ``slope_floor``), then
    the median intercept (as robust to a slow run as the constant's median)."""
    residual = measured - sums
    i, j = np.triu_indices(len(units), k=1)
    apart = units[i] != units[j]
    slope = max(float(np.median((residual[j] - residual[i])[apart] / (units[j] - units[i])[apart])), slope_floor)
    return float(np.median(residual - slope * units)), slope


def fit_overheads(sums: Sequence[float], units: Sequence[int], measured: Sequence[float],
                  smallest_entry: float) -> dict[str, OverheadFit]:
    """Fit a table's overheads to networks whose entries sum to ``sums`` over ``units`` units each and which
    measured ``measured`` ms whole, by two models: a constant per network (the median of measured - sums),
    and a constant plus a term per unit (Theil-Sen), which describes a runtime whose units, each timed
    alone, pay a cost the whole network pays once. The per-unit term never takes more than
    ``1 - UNIT_SHARE_KEPT`` of the table's ``smallest_entry`` (a unit never costs nothing or less, so a deeper
    network is never predicted faster). The per-unit model is fitted only to ``PER_UNIT_MIN_SAMPLES`` networks
    or more, of at least two sizes (``choose_fit`` picks one)."""
    s, n, m = (np.asarray(v, dtype=np.float64) for v in (sums, units, measured))
    slope_floor = -(1 - UNIT_SHARE_KEPT) * smallest_entry
    models = {"constant": _constant}
    if len(m) >= PER_UNIT_MIN_SAMPLES and len(np.unique(n)) >= 2:
        models["per unit"] = _per_unit
    fits = {}
    for name, fit in models.items():
        loo: list[float] | None = []
        for i in range(len(m)):
            rest = np.arange(len(m)) != i
            if len(m) < 3 or (name == "per unit" and len(np.unique(n[rest])) < 2):
                loo = None
                break
            a, b = fit(s[rest], n[rest], m[rest], slope_floor)
            loo.append(s[i] + a + b * n[i])
        a, b = fit(s, n, m, slope_floor)
        fits[name] = OverheadFit(name, a, b, None if loo is None else mape(loo, m),
                                 None if loo is None else float(np.min(np.asarray(loo) / m)),
                                 float(np.min((s + a + b * n) / m)))
    return fits


def with_overheads(sums: Sequence[float], units: Sequence[int], overhead_ms: float,
                   unit_overhead_ms: float) -> list[float]:
    """Whole-network predictions (ms) from block sums and unit counts, as ``LatencyTable.predict`` makes them."""
    return [float(total + n * unit_overhead_ms + overhead_ms) for total, n in zip(sums, units)]


def choose_fit(fits: Mapping[str, OverheadFit], floor: float) -> OverheadFit | None:
    """Among the fits that predict every sampled network at ``floor`` of its measurement or more (the per-unit
    model also every left-out one; the constant keeps its earlier rule, which a few noisy networks could break), the constant unless the per-unit model's leave-one-out MAPE is lower by
    ``PER_UNIT_GAIN`` of it or more (a second parameter must earn its place); None if neither is allowed."""
    allowed = {name: fit for name, fit in fits.items()
               if fit.lowest >= floor
               and (fit.model == "constant" or fit.loo_lowest is None or fit.loo_lowest >= floor)}
    constant, per_unit = allowed.get("constant"), allowed.get("per unit")
    if per_unit is None or per_unit.loo_mape is None:
        return constant
    if constant is None or constant.loo_mape is None or per_unit.loo_mape <= (1 - PER_UNIT_GAIN) * constant.loo_mape:
        return per_unit
    return constant
