"""qnas run end to end on the tiny config: every artifact, numbers that match their sources, resumption."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from qnas.cli.main import main
from qnas.export.profiles import PROFILES, profile_names

HERE = Path(__file__).resolve().parent
TINY = str(HERE / "tiny.yaml")


def test_run_end_to_end_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "--config", TINY, "--out", str(out), "--quiet"]) == 0
    for name in ("supernet/checkpoint.pt", "lut.yaml", "lut_check.json", "lut_check.png", "search/best.yaml",
                 "search/search.png", "search/winners/searched_0.6x_uniform_w8a8.yaml",
                 "search/winners/searched_0.35x_uniform_w8a8.yaml", "sensitivity/sensitivity.csv",
                 "sensitivity/sensitivity.png", "compare/compare.csv", "compare/compare.md", "compare/compare.png",
                 "report.md"):
        assert (out / name).exists(), name
    exported = sorted(p.name for p in (out / "export").iterdir())
    suffixes = [PROFILES[name].suffix for name in profile_names()]  # one file per registered profile
    stem = next(name for name in exported if name.endswith("_brevitas.pt"))[:-len("_brevitas.pt")]
    assert exported == sorted(stem + suffix for suffix in suffixes)
    report = (out / "report.md").read_text()
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows[:2]] == ["searched_0.6x_uniform_w8a8", "searched_0.35x_uniform_w8a8"]
    for row in rows:  # the report's table is the comparison's numbers, mean ± std over the two seeds
        assert f"| {row['method']} | {row['precision']} | {row['miou']} ± {row['miou_std']} | {row['gbitops']} |" in report
        seeds = [json.loads((out / "compare" / "runs" / row["method"] / f"seed{k}" / "metrics.json").read_text())
                 for k in (0, 1)]
        assert float(row["miou"]) == pytest.approx(np.mean([m["miou"] for m in seeds]), abs=1e-4)
        assert [float(row[f"miou_seed{k}"]) for k in (0, 1)] == pytest.approx([m["miou"] for m in seeds], abs=1e-4)
    assert "Differences in mean mIoU" in report and "Kendall tau between a layer's loss" in report
    check = json.loads((out / "lut_check.json").read_text())
    assert f"MAPE {check['mape'] * 100:.1f}%" in report
    # the run fits the table's offsets to the whole networks it measured, and says so
    from qnas.cost.latency import LatencyTable, choose_fit, fit_overheads
    from qnas.pipeline.latency import FIT_FLOOR

    table = LatencyTable.read(out / "lut.yaml")
    chosen = choose_fit(fit_overheads(check["block_sums_ms"], check["units"], check["measured_ms"],
                                      min(table.entries.values())), FIT_FLOOR)
    assert check["fit_model"] == chosen.model
    assert table.overhead_ms == check["fitted_overhead_ms"] == pytest.approx(chosen.overhead_ms, abs=1e-4)
    assert table.unit_overhead_ms == check["fitted_unit_overhead_ms"] == pytest.approx(chosen.unit_overhead_ms, abs=1e-4)
    per_unit = f" and {table.unit_overhead_ms:+.3f} ms per unit" if table.unit_overhead_ms else ""
    assert f"({table.overhead_ms:+.2f} ms per network{per_unit}; MAPE {check['fitted_mape'] * 100:.1f}% after" in report
    assert main(["run", "--config", TINY, "--out", str(out), "--quiet"]) == 2  # refuses without --resume
    capsys.readouterr()

    # A run killed during the search: training and the table are not redone, the search resumes.
    state = json.loads((out / "search" / "state.json").read_text())
    state["generation"] = 1
    (out / "search" / "state.json").write_text(json.dumps(state))
    for name in ("best.yaml", "search.png"):
        (out / "search" / name).unlink()
    marks = json.loads((out / "stages.json").read_text())
    (out / "stages.json").write_text(json.dumps({k: marks[k] for k in list(marks)[:list(marks).index("search")]}))
    stamp = (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["run", "--config", TINY, "--out", str(out), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "train supernet: already complete, skipped" in printed
    assert "latency table: already complete, skipped" in printed
    assert (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert (out / "search" / "best.yaml").exists()


@pytest.mark.slow
def test_run_for_openvino_uses_its_runtime_numerics_and_file(tmp_path: Path) -> None:
    """``qnas run --target openvino``: OpenVINO's latency table timed with 7-bit weights, every network with
    the target's numerics, the OpenVINO file scored in OpenVINO, the report saying so."""
    from qnas.cost.latency import LatencyTable

    out = tmp_path / "run"
    assert main(["run", "--config", TINY, "--target", "openvino", "--out", str(out), "--quiet"]) == 0
    table = LatencyTable.read(out / "lut.yaml")
    assert table.fingerprint["backend"] == "ov-cpu" and table.method["weight_bits"] == 7
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(0 < float(r["miou_deployed"]) <= 1 and float(r["agreement_deployed"]) > 0.5 for r in rows)
    report = (out / "report.md").read_text()
    assert "Target `openvino` (weights at most 7 bits)" in report and "miou_deployed" in report
    assert "Backend `ov-cpu`" in report and "the deployed file of the target" in report
    seed_config = (out / "compare" / "runs" / rows[0]["method"] / "seed0" / "config.yaml").read_text()
    assert "target: openvino" in seed_config
