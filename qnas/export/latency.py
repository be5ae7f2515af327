"""Measured INT8 latency: backends that time an ONNX model, the table builder, whole-network checks."""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from qnas.cost.latency import LatencyTable, LatencyTableError
from qnas.errors import QnasError
from qnas.export.network import RandomLayers, network_graph, unit_graph
from qnas.export.qlinear import QLinearGraph
from qnas.space.networks import network_plan, space_units
from qnas.space.spec import SpaceSpec

__all__ = ["Backend", "BACKENDS", "register_backend", "get_backend", "backend_names", "build_table",
           "measure_network", "table_weight_bits", "FLOAT_CONV_OPS", "INTEGER_CONV_OPS", "assert_integer"]

# modules whose import registers more built-in backends (imported on first lookup)
BUILTIN = ("qnas.export.openvino",)

FLOAT_CONV_OPS = {"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose"}
INTEGER_CONV_OPS = {"QLinearConv", "NhwcQLinearConv", "ConvInteger", "MatMulInteger"}  # MatMulInteger: a 1x1 conv


@dataclass
class Measurement:
    median_ms: float
    runs_ms: list[float]


def timed(run: Callable[[], Any], warmup: int, repeats: int) -> Measurement:
    """``warmup`` untimed calls of ``run``, then the wall time (ms) of ``repeats`` calls and their median."""
    for _ in range(warmup):
        run()
    runs = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        runs.append((time.perf_counter() - tic) * 1000.0)
    return Measurement(statistics.median(runs), runs)


class Backend:
    """Times an ONNX model on one engine; ``fingerprint`` says which device and settings.

    ``writer`` is the graph form the engine runs as integer kernels: the table's blocks and the
    checked whole networks are written with it."""

    name = "?"
    writer: type = QLinearGraph
    model_kind = "QLinear int8, random codes"
    profile = "ort"  # the export profile whose files this engine runs (a trained policy's measured latency)

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError

    def measure(self, model: onnx.ModelProto, warmup: int, repeats: int) -> Measurement:
        raise NotImplementedError

    def assert_integer(self, model: onnx.ModelProto, what: str) -> None:
        """Raise unless the engine runs every conv of ``model`` as an integer kernel."""


BACKENDS: dict[str, Callable[[int], Backend]] = {}


def register_backend(name: str) -> Callable:
    def decorate(cls: type[Backend]) -> type[Backend]:
        if name in BACKENDS:
            raise ValueError(f"backend {name!r} is already registered")
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def backend_names() -> list[str]:
    """Every registered latency backend."""
    _load_builtin()
    return sorted(BACKENDS)


def get_backend(name: str, threads: int) -> Backend:
    _load_builtin()
    if name not in BACKENDS:
        raise QnasError(f"unknown latency backend {name!r}; registered: {sorted(BACKENDS)}")
    return BACKENDS[name](threads)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _random_inputs(session: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for arg in session.get_inputs():
        shape = [int(d) for d in arg.shape]
        if arg.type == "tensor(uint8)":
            feeds[arg.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            feeds[arg.name] = rng.random(shape, dtype=np.float32)
    return feeds


@register_backend("ort-cpu")
class OrtCpu(Backend):
    """onnxruntime's CPU execution provider, all graph optimizations, fixed intra-op threads."""

    def fingerprint(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"backend": self.name, "cpu": _cpu_model(), "cores": os.cpu_count(),
                "onnxruntime": ort.__version__, "threads": self.threads}

    def session(self, model: onnx.ModelProto, optimized_path: str | None = None) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimized_path:
            options.optimized_model_filepath = optimized_path
        options.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def optimized_ops(self, model: onnx.ModelProto) -> list[str]:
        """Op types of the graph onnxruntime actually runs (after its optimizations)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "optimized.onnx")
            self.session(model, path)
            return [n.op_type for n in onnx.load(path).graph.node]

    def measure(self, model: onnx.ModelProto, warmup: int, repeats: int) -> Measurement:
        session = self.session(model)
        feeds = _random_inputs(session, np.random.default_rng(0))
        return timed(lambda: session.run(None, feeds), warmup, repeats)

    def assert_integer(self, model: onnx.ModelProto, what: str) -> None:
        """Every conv of the optimized graph must be an integer kernel (no float Conv left)."""
        ops = self.optimized_ops(model)
        floats = sorted(set(ops) & FLOAT_CONV_OPS)
        written = sum(n.op_type in INTEGER_CONV_OPS for n in model.graph.node)
        if floats or sum(op in INTEGER_CONV_OPS for op in ops) != written:
            raise QnasError(f"{what}: the optimized graph runs {floats or ops}; not every conv is an integer kernel")


def assert_integer(backend: Backend, model: onnx.ModelProto, what: str) -> None:
    """Raise unless ``backend``'s engine runs every conv of ``model`` as an integer kernel."""
    backend.assert_integer(model, what)


NOISY_SPREAD = 0.10  # an entry whose round medians differ by more than this (relative to its median) is re-measured
TOO_NOISY_SHARE = 0.2  # the table is flagged when more than this share of entries stay noisy after re-measuring


def _spread(rounds: list[list[float]], planned: int) -> tuple[float, float]:
    """The median over every run, and (max - min) / median of the per-round medians; once re-measured
    (more rounds than ``planned``), without the one round farthest from the median: a single burst of
    load is forgiven, a machine that stays noisy is not."""
    median = statistics.median([t for r in rounds for t in r])
    medians = sorted((statistics.median(r) for r in rounds), key=lambda m: abs(m - median))
    if len(medians) > planned:
        medians = medians[:-1]
    return median, (max(medians) - min(medians)) / median


def build_table(spec: SpaceSpec, resolution: tuple[int, int], backend: Backend, out: str | os.PathLike[str], *,
                warmup: int = 5, repeats: int = 30, resume: bool = True, rounds: int = 3, chunk: int = 12,
                remeasure: int = 2, weight_bits: int = 8,
                progress: Callable[[str, int, int], None] | None = None) -> LatencyTable:
    """Measure every block of the space at ``resolution`` and say how much to trust it.

    Blocks are measured ``chunk`` at a time in ``rounds`` interleaved rounds (each round times every
    block of the chunk with ``repeats / rounds`` runs, so a burst of load from another process hits
    one round, not one block); an entry is the median of all its runs, and its spread the relative
    range of its round medians. Entries spread by more than ``NOISY_SPREAD`` are measured again, up
    to ``remeasure`` more rounds. The table is written after every chunk (a killed build keeps its
    finished chunks; with ``resume`` an existing table for the same device and resolution keeps its
    entries) and records in ``method`` how many entries stayed noisy and whether that makes the
    machine too noisy for the table to be meaningful (``method['too_noisy']``). ``weight_bits``: the widest
    weight codes of the target the table is for (``method['weight_bits']``).
    """
    out = Path(out)
    fingerprint = backend.fingerprint()
    method = {"warmup": warmup, "repeats": repeats, "rounds": rounds, "statistic": "median of interleaved rounds",
              "model": backend.model_kind, "weight_bits": weight_bits}
    table = LatencyTable(fingerprint, tuple(resolution), {}, 0.0, method)
    if resume and out.exists():
        old = LatencyTable.read(out)
        old.check_device(fingerprint)
        if old.resolution != table.resolution:
            raise LatencyTableError(f"{out} was measured at {old.resolution}, not {table.resolution}; "
                                    "use another --out")
        if table_weight_bits(old) != weight_bits:
            raise LatencyTableError(f"{out} was measured with {table_weight_bits(old)}-bit weights, not {weight_bits}; "
                                    "use another --out")
        table.entries.update(old.entries)
        table.spread.update({k: v for k, v in old.spread.items() if k in old.entries})
        table.overhead_ms, table.unit_overhead_ms = old.overhead_ms, old.unit_overhead_ms
    todo = [(unit, plan) for unit, plan in space_units(spec, *resolution) if unit.key not in table.entries]
    per_round = max(1, -(-repeats // rounds))
    done = 0
    for start in range(0, len(todo), chunk):
        models = {}
        for i, (unit, plan) in enumerate(todo[start:start + chunk], start=start):
            model = unit_graph(plan, unit.label, RandomLayers(i, weight_bits), backend.writer).model()
            assert_integer(backend, model, f"block {unit.key}")
            models[unit.key] = model
        runs: dict[str, list[list[float]]] = {key: [] for key in models}
        for r in range(rounds):
            for j, (key, model) in enumerate(models.items()):
                if progress:
                    progress(key, (done * rounds + r * len(models) + j), len(todo) * rounds)
                runs[key].append(backend.measure(model, warmup if r == 0 else 1, per_round).runs_ms)
        for _ in range(remeasure):
            noisy = [key for key in models if _spread(runs[key], rounds)[1] > NOISY_SPREAD]
            for key in noisy:
                runs[key].append(backend.measure(models[key], 1, per_round).runs_ms)
        for key in models:
            median, spread = _spread(runs[key], rounds)
            table.entries[key] = round(median, 5)
            table.spread[key] = round(spread, 4)
        done += len(models)
        table.write(out)
    noisy = sorted(key for key, spread in table.spread.items() if spread > NOISY_SPREAD)
    table.method.update(noisy_entries=len(noisy), noisy_spread=NOISY_SPREAD,
                        median_spread=round(statistics.median(table.spread.values()), 4) if table.spread else None,
                        too_noisy=len(noisy) > TOO_NOISY_SHARE * max(1, len(table.spread)))
    if progress:
        progress("", len(todo) * rounds, len(todo) * rounds)
    table.write(out)
    return table


def table_weight_bits(table: LatencyTable) -> int:
    """The widest weight codes a table's blocks were timed with (8 for tables from before targets)."""
    return int((table.method or {}).get("weight_bits", 8))


def measure_network(spec: SpaceSpec, genome: Mapping[str, int], resolution: tuple[int, int], backend: Backend,
                    warmup: int, repeats: int, check_integer: bool = True, weight_bits: int = 8) -> float:
    """Median latency (ms) of the whole genome's INT8 network, measured like the table's blocks."""
    model = network_graph(network_plan(spec, genome, *resolution), RandomLayers(0, weight_bits),
                          backend.writer).model()
    if check_integer:
        assert_integer(backend, model, "network")
    return backend.measure(model, warmup, repeats).median_ms
