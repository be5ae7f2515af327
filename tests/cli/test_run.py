"""qnas run end to end on the tiny config: every artifact, numbers that match their sources, resumption."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from qnas.cli.main import main

HERE = Path(__file__).resolve().parent
TINY = str(HERE / "tiny.yaml")


def test_run_end_to_end_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "--config", TINY, "--out", str(out), "--quiet"]) == 0
    for name in ("supernet/checkpoint.pt", "lut.yaml", "lut_check.json", "lut_check.png", "search/best.yaml",
                 "search/search.png", "compare/compare.csv", "compare/compare.md", "report.md"):
        assert (out / name).exists(), name
    exported = sorted(p.name for p in (out / "export").iterdir())
    assert [name.split("_")[-1] for name in exported] == ["fp32.onnx", "int8.onnx", "qonnx.onnx", "qdq.onnx"]
    report = (out / "report.md").read_text()
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # the report's table is the comparison's numbers
        assert f"| {row['method']} | {row['precision']} | {row['miou']} | {row['gbitops']} |" in report
        metrics = json.loads((out / "compare" / "runs" / row["method"] / "metrics.json").read_text())
        assert float(row["miou"]) == pytest.approx(metrics["miou"], abs=1e-4)
    check = json.loads((out / "lut_check.json").read_text())
    assert f"MAPE {check['mape'] * 100:.1f}%" in report
    assert main(["run", "--config", TINY, "--out", str(out), "--quiet"]) == 2  # refuses without --resume
    capsys.readouterr()

    # A run killed during the search: training and the table are not redone, the search resumes.
    state = json.loads((out / "search" / "state.json").read_text())
    state["generation"] = 1
    (out / "search" / "state.json").write_text(json.dumps(state))
    for name in ("best.yaml", "search.png"):
        (out / "search" / name).unlink()
    stamp = (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["run", "--config", TINY, "--out", str(out), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "train supernet: already complete, skipped" in printed
    assert "latency table: already complete, skipped" in printed
    assert (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert (out / "search" / "best.yaml").exists()
