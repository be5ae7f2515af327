"""qnas export through the CLI: every profile from a tiny trained run, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

from qnas.cli.main import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TINY = str(HERE / "tiny.yaml")
W4 = str(ROOT / "policies/uniform_w4a4.yaml")



@pytest.mark.parametrize("fmt", ["qonnx", "ort", "trt", "openvino", "onnx-fp32"])
def test_every_format_writes_a_file_that_runs(supernet_run: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"{fmt}.onnx"
    assert main(["export", "--config", TINY, "--checkpoint", str(supernet_run), "--policy", W4,
                 "--format", fmt, "--out", str(out), "--height", "32", "--width", "64"]) == 0
    model = onnx.load(out)
    if fmt == "qonnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx

        wrapper = ModelWrapper(model)
        logits = execute_onnx(wrapper, {"image": np.zeros((1, 3, 32, 64), np.float32)})["logits"]
        assert {n.op_type for n in model.graph.node} >= {"Quant", "Conv"}
    else:
        session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
        logits = session.run(None, {"image": np.zeros((1, 3, 32, 64), np.float32)})[0]
    assert logits.shape == (1, 11, 32, 64)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_brevitas_format_writes_a_model_that_loads_back(supernet_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    import torch

    from qnas.config import load_config
    from qnas.export import load_brevitas
    from qnas.space import SearchSpace

    out = tmp_path / "w4_brevitas.pt"
    assert main(["export", "--config", TINY, "--checkpoint", str(supernet_run), "--policy", W4,
                 "--format", "brevitas", "--out", str(out), "--height", "32", "--width", "64"]) == 0
    assert "wrote" in capsys.readouterr().out and [p.name for p in tmp_path.iterdir()] == [out.name]
    model = load_brevitas(out, SearchSpace(load_config(TINY).space))
    assert {bits.weight for bits in model.bits.values()} >= {4}
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 64)).shape == (1, 11, 32, 64)


def test_export_errors_are_one_line_and_leave_no_file(supernet_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load(Path(W4).read_text())
    doc["genome"]["s1.depth"] = 7
    bad.write_text(yaml.safe_dump(doc))
    out = tmp_path / "model.onnx"
    capsys.readouterr()
    assert main(["export", "--config", TINY, "--checkpoint", str(supernet_run), "--policy", str(bad),
                 "--format", "qonnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "s1.depth" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:
        main(["export", "--config", TINY, "--checkpoint", str(supernet_run), "--policy", W4,
              "--format", "tensorrt", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tensorrt'" in err and "qonnx" in err and "trt" in err
    assert list(tmp_path.iterdir()) == [bad]


def test_ort_export_notes_uint8_weights_and_the_target_that_avoids_them(supernet_run: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    w8 = str(ROOT / "policies/uniform_w8a8.yaml")
    common = ["export", "--config", TINY, "--checkpoint", str(supernet_run), "--policy", w8, "--format", "ort",
              "--height", "32", "--width", "64"]
    assert main(common + ["--out", str(tmp_path / "w8.onnx")]) == 0
    out = capsys.readouterr().out
    model = onnx.load(tmp_path / "w8.onnx")
    uint8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.UINT8 and len(t.dims) >= 2]  # weights
    integer = sum(n.op_type in ("QLinearConv", "MatMulInteger") for n in model.graph.node)
    assert uint8 and f"note: {len(uint8)} of {integer} convs hold 8-bit weights as uint8" in out
    assert "--target ort" in out
    # the ort target's numerics: int8 weights throughout, no note
    assert main(common + ["--target", "ort", "--out", str(tmp_path / "w8_t.onnx")]) == 0
    assert "note:" not in capsys.readouterr().out
