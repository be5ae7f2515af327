"""The measured latency table: built, integer, resumable, device-bound; predictions add up."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qnas.cli.main import main
from qnas.cost.latency import LatencyTable, LatencyTableError, network_blocks, space_blocks
from qnas.export.latency import (
    FLOAT_CONV_OPS, INTEGER_CONV_OPS, Backend, Measurement, backend_names, build_table, get_backend, measure_network,
)
from qnas.export.network import RandomLayers, network_graph, unit_graph
from qnas.space import SearchSpace, network_plan, space_units

HERE = Path(__file__).resolve().parent
TINY = str(HERE.parent / "cli" / "tiny.yaml")
RES = (64, 64)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory, small_space: SearchSpace) -> Path:
    path = tmp_path_factory.mktemp("lut") / "lut.yaml"
    build_table(small_space.spec, RES, get_backend("ort-cpu", 1), path, warmup=1, repeats=3)
    return path


def test_table_has_every_block(table_path: Path, small_space: SearchSpace) -> None:
    table = LatencyTable.read(table_path)
    assert set(table.entries) == {b.key for b in space_blocks(small_space.spec, *RES)}
    assert all(v > 0 for v in table.entries.values())
    assert table.fingerprint["backend"] == "ort-cpu" and table.fingerprint["threads"] == 1
    assert {"cpu", "cores", "onnxruntime"} <= set(table.fingerprint)


def test_every_conv_of_every_block_is_integer(small_space: SearchSpace) -> None:
    backend = get_backend("ort-cpu", 1)
    for i, (block, plan) in enumerate(space_units(small_space.spec, *RES)):
        model = unit_graph(plan, block.label, RandomLayers(i)).model()
        written = [n.op_type for n in model.graph.node]
        ops = backend.optimized_ops(model)
        assert not set(ops) & FLOAT_CONV_OPS, (block.key, ops)
        n_written = sum(op in INTEGER_CONV_OPS for op in written)
        assert sum(op in INTEGER_CONV_OPS for op in ops) == n_written > 0, (block.key, ops)


def test_prediction_is_the_sum_of_the_blocks(table_path: Path, small_space: SearchSpace) -> None:
    table = LatencyTable.read(table_path)
    rng = np.random.default_rng(0)
    for g in [small_space.largest(), small_space.smallest()] + [small_space.sample(rng) for _ in range(5)]:
        assert table.predict(small_space.spec, g) == pytest.approx(
            sum(table.entries[b.key] for b in network_blocks(small_space.spec, g, *RES)))


def test_resume_keeps_measured_entries(table_path: Path, small_space: SearchSpace, tmp_path: Path) -> None:
    table = LatencyTable.read(table_path)
    partial = LatencyTable(table.fingerprint, table.resolution, dict(list(table.entries.items())[:5]))
    partial.entries = {k: 123.0 for k in partial.entries}  # marks: a re-measurement would overwrite them
    path = tmp_path / "partial.yaml"
    partial.write(path)
    seen = []
    rebuilt = build_table(small_space.spec, RES, get_backend("ort-cpu", 1), path, warmup=1, repeats=2,
                          progress=lambda key, done, total: seen.append(key))
    assert len({k for k in seen if k}) == len(table.entries) - 5
    assert sum(v == 123.0 for v in rebuilt.entries.values()) == 5
    assert set(rebuilt.entries) == set(table.entries)


def test_resume_refuses_another_device(table_path: Path, small_space: SearchSpace, tmp_path: Path) -> None:
    table = LatencyTable.read(table_path)
    table.fingerprint = {**table.fingerprint, "cpu": "some other CPU"}
    path = tmp_path / "other.yaml"
    table.write(path)
    with pytest.raises(LatencyTableError, match="another device"):
        build_table(small_space.spec, RES, get_backend("ort-cpu", 1), path, warmup=1, repeats=2)


def test_whole_network_graph_is_integer_and_runs(small_space: SearchSpace) -> None:
    backend = get_backend("ort-cpu", 1)
    model = network_graph(network_plan(small_space.spec, small_space.largest(), *RES), RandomLayers(0)).model()
    assert not set(backend.optimized_ops(model)) & FLOAT_CONV_OPS
    assert measure_network(small_space.spec, small_space.smallest(), RES, backend, 1, 2) > 0


def test_cli_table_cost_and_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lut = tmp_path / "lut.yaml"
    assert main(["latency-table", "--config", TINY, "--out", str(lut), "--repeats", "3", "--warmup", "1"]) == 0
    w8 = str(HERE.parents[1] / "policies/uniform_w8a8.yaml")
    capsys.readouterr()
    assert main(["cost", "--config", TINY, "--policy", w8, "--lut", str(lut), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0
    assert main(["latency-check", "--config", TINY, "--lut", str(lut), "--samples", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"mape", "kendall_tau", "macs_kendall_tau", "samples"} and result["samples"] == 5
    assert Path(result["plot"]).stat().st_size > 1000
    # a table from another device is refused, with a one-line error
    doc = LatencyTable.read(lut)
    doc.fingerprint["cpu"] = "elsewhere"
    doc.write(lut)
    assert main(["cost", "--config", TINY, "--policy", w8, "--lut", str(lut)]) == 2
    assert "another device" in capsys.readouterr().err
    assert main(["cost", "--config", TINY, "--policy", w8, "--lut", str(lut), "--force-lut", "--json"]) == 0


@pytest.mark.parametrize("name", backend_names())
def test_every_backend_times_an_integer_unit_and_names_its_device(name: str, small_space: SearchSpace) -> None:
    backend = get_backend(name, 1)
    fingerprint = backend.fingerprint()
    assert fingerprint["backend"] == name and fingerprint["threads"] == 1
    unit, plan = space_units(small_space.spec, *RES)[1]
    model = unit_graph(plan, unit.label, RandomLayers(0), backend.writer).model()
    backend.assert_integer(model, "a unit")  # every conv of the unit runs as an integer kernel
    measurement = backend.measure(model, 1, 3)
    assert measurement.median_ms > 0 and len(measurement.runs_ms) == 3


@pytest.mark.parametrize("name", backend_names())
def test_every_backend_times_a_zoomed_block_in_integer(name: str, small_space: SearchSpace) -> None:
    """A zoomed block (strided dilated depthwise conv, nearest upsampling) is a unit of its own in the table,
    and every backend runs it with integer kernels."""
    spec = replace(small_space.spec, zoom=(0, 1))
    zoomed = [(unit, plan) for unit, plan in space_units(spec, *RES) if unit.key.endswith(" z1")]
    mbconvs = [unit for unit, _ in space_units(spec, *RES) if unit.kind == "mbconv"]
    assert len(zoomed) == len(mbconvs) // 2 > 0  # each block shape plain and zoomed
    backend = get_backend(name, 1)
    for i, (unit, plan) in enumerate(zoomed[:4]):
        model = unit_graph(plan, unit.label, RandomLayers(i), backend.writer).model()
        backend.assert_integer(model, unit.key)
        assert "Resize" in {n.op_type for n in model.graph.node}
    assert backend.measure(model, 1, 3).median_ms > 0


def test_backends_are_registered_with_their_graph_form() -> None:
    from qnas.export.openvino import OvCpu
    from qnas.export.qdq import MixedQdqGraph
    from qnas.export.qlinear import QLinearGraph

    assert backend_names() == ["ort-cpu", "ov-cpu"]
    assert get_backend("ort-cpu", 1).writer is QLinearGraph
    assert isinstance(get_backend("ov-cpu", 2), OvCpu) and get_backend("ov-cpu", 2).writer is MixedQdqGraph
    assert get_backend("ov-cpu", 2).fingerprint()["precision_hint"] == "f32"


class _Scripted(Backend):
    """Times nothing: returns the next scripted milliseconds (a whole round's runs at that value)."""

    def __init__(self, script) -> None:
        super().__init__(1)
        self.script, self.calls = script, 0

    def fingerprint(self) -> dict:
        return {"backend": "scripted", "threads": 1}

    def measure(self, model, warmup: int, repeats: int) -> Measurement:
        ms = self.script(self.calls)
        self.calls += 1
        return Measurement(ms, [ms] * repeats)


def test_the_table_measures_its_own_noise_and_forgives_one_burst(small_space: SearchSpace, tmp_path: Path) -> None:
    blocks = len(space_units(small_space.spec, *RES))
    quiet = build_table(small_space.spec, RES, _Scripted(lambda i: 1.0), tmp_path / "q.yaml", repeats=3, chunk=100)
    assert set(quiet.spread.values()) == {0.0} and quiet.method["noisy_entries"] == 0 and not quiet.method["too_noisy"]
    # one burst: the first block's second round ran 5x slower; it is re-measured and its entry stays 1 ms
    burst = _Scripted(lambda i: 5.0 if i == blocks else 1.0)
    table = build_table(small_space.spec, RES, burst, tmp_path / "b.yaml", repeats=3, chunk=100)
    assert burst.calls == 3 * blocks + 1  # one more round of the one noisy block, then the burst is forgiven
    assert set(table.entries.values()) == {1.0} and table.method["noisy_entries"] == 0
    assert LatencyTable.read(tmp_path / "b.yaml").spread == table.spread  # written with the table
    # a machine that stays noisy (every other run 3x slower): flagged as too noisy to be meaningful
    noisy = build_table(small_space.spec, RES, _Scripted(lambda i: 3.0 if i % 2 else 1.0), tmp_path / "n.yaml",
                        repeats=3, chunk=100)
    assert noisy.method["too_noisy"] and noisy.method["noisy_entries"] > 0.2 * blocks
