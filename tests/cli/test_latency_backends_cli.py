"""The latency commands: a table per runtime (``--backend``) never used for another, the noisy-table warning,
``--fit-overhead``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qnas.cli.main import main
from qnas.cost.latency import LatencyTable, choose_fit, fit_overheads
from qnas.pipeline.latency import FIT_FLOOR

TINY = str(Path(__file__).parent / "tiny.yaml")


def test_an_openvino_table_is_built_checked_and_refused_for_onnxruntime(tmp_path: Path, capsys) -> None:
    lut = tmp_path / "lut_ov.yaml"
    assert main(["latency-table", "--config", TINY, "--backend", "ov-cpu", "--out", str(lut), "--repeats", "2",
                 "--warmup", "1"]) == 0
    table = LatencyTable.read(lut)
    assert table.fingerprint["backend"] == "ov-cpu" and "openvino" in table.fingerprint
    assert table.method["model"].startswith("Q/DQ") and all(ms > 0 for ms in table.entries.values())
    capsys.readouterr()
    assert main(["latency-check", "--config", TINY, "--lut", str(lut), "--backend", "ov-cpu", "--samples", "3",
                 "--repeats", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 3 and len(result["measured_ms"]) == 3
    # the same table named for another runtime: one line, exit 2, nothing written
    assert main(["latency-check", "--config", TINY, "--lut", str(lut), "--backend", "ort-cpu", "--json"]) == 2
    err = capsys.readouterr().err
    assert "measured with backend 'ov-cpu', not 'ort-cpu'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_:
        main(["latency-table", "--config", TINY, "--backend", "tensorrt", "--out", str(lut)])
    assert exit_.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_a_noisy_table_warns_and_names_the_check_to_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """The builder cannot tell a competing process from a noisy VM (on the AVX-512 VNNI machine, idle onnxruntime
    builds were the noisier ones), so the warning names the command that decides, with the table's target."""
    import qnas.cli.latency_commands as commands

    lut = tmp_path / "lut.yaml"
    noisy = LatencyTable({"backend": "ort-cpu"}, (32, 32), {"a": 1.0, "b": 2.0}, 0.0,
                         {"noisy_entries": 2, "noisy_spread": 0.1, "median_spread": 0.3, "too_noisy": True},
                         spread={"a": 0.3, "b": 0.4})
    monkeypatch.setattr(commands, "latency_table", lambda *args, **kwargs: noisy)
    assert main(["latency-table", "--config", TINY, "--out", str(lut)]) == 0
    out, err = capsys.readouterr()
    assert "2 of 2 blocks above 10% after re-measuring" in out
    assert f"qnas latency-check --config {TINY} --lut {lut}`" in err
    assert main(["latency-table", "--config", TINY, "--target", "ort", "--out", str(lut)]) == 0
    assert f"qnas latency-check --config {TINY} --lut {lut} --target ort`" in capsys.readouterr().err


def test_fit_overhead_writes_the_chosen_fit_of_the_raw_entries(tmp_path: Path, capsys) -> None:
    lut = tmp_path / "lut.yaml"
    assert main(["latency-table", "--config", TINY, "--out", str(lut), "--repeats", "2", "--warmup", "1"]) == 0
    check = ["latency-check", "--config", TINY, "--lut", str(lut), "--samples", "6", "--repeats", "2",
             "--fit-overhead"]
    # a table whose overheads went wrong (every prediction negative) can still be checked and refitted
    table = LatencyTable.read(lut)
    smallest = min(table.entries.values())
    table.overhead_ms, table.unit_overhead_ms = -1000.0, round(-smallest / 2, 5)  # read() refuses a steeper one
    table.write(lut)
    capsys.readouterr()
    assert main(check) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "lut_check.json").read_text())
    sums, units, measured = (np.asarray(result[k]) for k in ("block_sums_ms", "units", "measured_ms"))
    assert result["predicted_ms"] == pytest.approx(list(sums + units * table.unit_overhead_ms - 1000.0))
    chosen = choose_fit(fit_overheads(sums, units, measured, smallest), FIT_FLOOR)
    fitted = LatencyTable.read(lut)
    assert result["fit_model"] == chosen.model
    assert fitted.overhead_ms == result["fitted_overhead_ms"] == pytest.approx(chosen.overhead_ms, abs=1e-4)
    assert fitted.unit_overhead_ms == result["fitted_unit_overhead_ms"] == pytest.approx(chosen.unit_overhead_ms,
                                                                                          abs=1e-4)
    assert -1000.0 < fitted.overhead_ms < 1000.0
    assert f"table overhead set to {fitted.overhead_ms:.3f} ms" in printed
    assert f"(MAPE after the fit {result['fitted_mape'] * 100:.1f}%; leave-one-out MAPE by model: constant" in printed
    predicted = sums + units * fitted.unit_overhead_ms + fitted.overhead_ms
    assert result["fitted_mape"] == pytest.approx(float(np.mean(np.abs(predicted - measured) / measured)), abs=1e-6)
    # a second fit replaces the first (it fits the raw entries again); it keeps the first check's files
    kept = (tmp_path / "lut_check.json").read_bytes(), (tmp_path / "lut_check.png").read_bytes()
    assert main(check) == 0
    again = json.loads((tmp_path / "lut_check-2.json").read_text())
    assert again["plot"] == str(tmp_path / "lut_check-2.png") and (tmp_path / "lut_check-2.png").stat().st_size > 0
    assert ((tmp_path / "lut_check.json").read_bytes(), (tmp_path / "lut_check.png").read_bytes()) == kept
    assert again["predicted_ms"] == pytest.approx(list(np.asarray(again["block_sums_ms"])
                                                       + np.asarray(again["units"]) * fitted.unit_overhead_ms
                                                       + fitted.overhead_ms))
    refit = choose_fit(fit_overheads(again["block_sums_ms"], again["units"], again["measured_ms"], smallest), FIT_FLOOR)
    final = LatencyTable.read(lut)
    assert final.overhead_ms == pytest.approx(refit.overhead_ms, abs=1e-4)
    assert final.unit_overhead_ms == pytest.approx(refit.unit_overhead_ms, abs=1e-4)


def test_a_fit_that_would_predict_next_to_nothing_is_refused(tmp_path: Path, capsys) -> None:
    """Blocks that each cost 20x what they add to a whole network: one constant would bring the small networks'
    predictions near zero, so the table keeps its overhead and the command says why."""
    lut = tmp_path / "lut.yaml"
    assert main(["latency-table", "--config", TINY, "--out", str(lut), "--repeats", "2", "--warmup", "1"]) == 0
    table = LatencyTable.read(lut)
    table.entries = {key: 20 * ms for key, ms in table.entries.items()}
    table.write(lut)
    capsys.readouterr()
    assert main(["latency-check", "--config", TINY, "--lut", str(lut), "--samples", "6", "--repeats", "2",
                 "--fit-overhead"]) == 0
    err = capsys.readouterr().err
    assert "warning: not fitted: no fit predicts every measured network at 50%" in err
    assert "constant (" in err and "the table keeps +0.000 ms" in err
    assert LatencyTable.read(lut).unit_overhead_ms == 0.0
    assert LatencyTable.read(lut).overhead_ms == 0.0
    assert "fit_refused" in json.loads((tmp_path / "lut_check.json").read_text())
