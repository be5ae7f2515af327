"""``--backend`` on the latency commands: a table per runtime, and a table never used for another runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qnas.cli.main import main
from qnas.cost.latency import LatencyTable

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
