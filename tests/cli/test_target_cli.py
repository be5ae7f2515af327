"""``--target``: every stage uses the target's numerics, the comparison scores the deployed file, and runs or
tables made for another target are refused in one line."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import yaml

from qnas.cli.main import main
from qnas.config import load_config
from qnas.cost.latency import LatencyTable
from qnas.pipeline import load_trained
from qnas.quant import PACTActivationQuant, PerChannelWeightQuant

HERE = Path(__file__).resolve().parent
TINY = str(HERE / "tiny.yaml")
W8 = str(HERE.parents[1] / "policies/uniform_w8a8.yaml")


def _one_line(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in needles), err


def test_a_loaded_supernet_has_the_config_target_s_numerics(supernet_run: Path) -> None:
    config = load_config(TINY)
    for target, weight, unsigned in (("qonnx", None, None), ("trt", None, 7), ("ort", 7, None)):
        net, _ = load_trained(replace(config, deploy=replace(config.deploy, target=target)), supernet_run)
        quants = list(net.modules())
        assert {q.max_bits for q in quants if isinstance(q, PerChannelWeightQuant)} == {weight}
        assert {q.max_bits for q in quants if isinstance(q, PACTActivationQuant) and not q.signed} == {unsigned}
        assert {q.max_bits for q in quants if isinstance(q, PACTActivationQuant) and q.signed} <= {None}


def test_compare_for_trt_scores_the_deployed_file_and_keeps_its_runs_to_trt(supernet_run: Path, tmp_path: Path,
                                                                            capsys) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", "--config", TINY, "--target", "trt", "--supernet", str(supernet_run), "--out", str(out),
                 "--no-baselines", "--seeds", "1", "--quiet", W8]) == 0
    with open(out / "compare.csv") as f:
        (row,) = list(csv.DictReader(f))
    deployed = json.loads((out / "runs" / "uniform_w8a8" / "seed0" / "deployed_trt.json").read_text())
    assert deployed["profile"] == "trt" and float(row["miou_deployed"]) == round(deployed["miou"], 4)
    assert 0.9 <= float(row["agreement_deployed"]) <= 1.0  # the file computes the trt-numerics model
    text = (out / "compare.md").read_text()
    assert "Target `trt` (unsigned activations at most 7 bits)" in text and "miou_deployed" in text
    capsys.readouterr()
    # the same folder for another target: its finished runs hold trt's numerics
    assert main(["compare", "--config", TINY, "--target", "ort", "--supernet", str(supernet_run), "--out", str(out),
                 "--no-baselines", "--seeds", "1", "--quiet", W8]) == 2
    _one_line(capsys, "trained for target 'trt', not 'ort'", "--target trt")
    run = str(out / "runs" / "uniform_w8a8" / "seed0")
    assert main(["eval", "--config", TINY, "--supernet", run, "--policy", W8]) == 2
    _one_line(capsys, "trained for target 'trt', not 'qonnx'", "--target trt")
    onnx_file = tmp_path / "w8.onnx"
    assert main(["export", "--config", TINY, "--target", "trt", "--checkpoint", run, "--policy", W8,
                 "--format", "trt", "--out", str(onnx_file)]) == 0 and onnx_file.stat().st_size > 0


def test_a_latency_table_is_timed_with_the_target_s_weights(supernet_run: Path, tmp_path: Path, capsys) -> None:
    lut8, lut7 = tmp_path / "lut8.yaml", tmp_path / "lut7.yaml"
    for lut, target in ((lut8, "qonnx"), (lut7, "ort")):
        assert main(["latency-table", "--config", TINY, "--target", target, "--out", str(lut), "--repeats", "2",
                     "--warmup", "1"]) == 0
    assert LatencyTable.read(lut8).method["weight_bits"] == 8 and LatencyTable.read(lut7).method["weight_bits"] == 7
    capsys.readouterr()
    search = tmp_path / "search"
    assert main(["search", "--config", TINY, "--target", "ort", "--supernet", str(supernet_run), "--out", str(search),
                 "--lut", str(lut8), "--latency-budget", "0.9x:uniform_w8a8", "--quiet"]) == 2
    _one_line(capsys, "timed with 8-bit weights", "target 'ort' runs 7-bit weights", "--target ort")
    assert not search.exists()
    assert main(["latency-check", "--config", TINY, "--target", "ort", "--lut", str(lut7), "--samples", "2",
                 "--repeats", "2", "--json"]) == 0


def test_an_unknown_target_in_the_config_is_one_line(tmp_path: Path, capsys) -> None:
    config = yaml.safe_load(Path(TINY).read_text())
    config["deploy"]["target"] = "tensorrt"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["eval", "--config", str(path), "--supernet", str(tmp_path), "--policy", W8]) == 2
    _one_line(capsys, "deploy.target", "qonnx, ort, trt, openvino", "'tensorrt'")
