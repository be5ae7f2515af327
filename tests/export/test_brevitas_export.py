"""The ``brevitas`` profile: the frozen subnet as a brevitas model that computes the evaluated model within
float rounding, brevitas' own QONNX export of it under qonnx's executor, and its saved form."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("brevitas")

from qnas.errors import QnasError  # noqa: E402
from qnas.export import brevitas_qonnx, load_brevitas, to_brevitas  # noqa: E402
from qnas.export.brevitas import BrevitasSegNet, brevitas_bytes, save_brevitas  # noqa: E402
from qnas.export.ort import fold_batchnorm  # noqa: E402
from qnas.export.qonnx import qonnx_runner  # noqa: E402
from qnas.quant.modules import apply_target  # noqa: E402
from qnas.space import SearchSpace, SpaceSpec  # noqa: E402
from qnas.train import cut_subnet  # noqa: E402
from tests.export.conftest import brevitas_codes, check_codes  # noqa: E402

GENOMES = {
    "w8a8": lambda space: space.uniform(8, 3, 6, 3),
    "w4a4": lambda space: space.uniform(4, 5, 3, 2),
    "mixed": lambda space: space.sample(np.random.default_rng(11)),
}


def _subnet(trained, space: SearchSpace, name: str):
    supernet, images, _ = trained
    return cut_subnet(supernet, GENOMES[name](space), images)


def _logits(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def parity(reference, model, images) -> tuple[float, float]:
    """Largest |logit difference| and the share of pixels whose class agrees, over ``images``."""
    diff, agree, total = 0.0, 0, 0
    for x in images:
        want, got = _logits(reference, x), _logits(model, x)
        diff = max(diff, float(np.abs(got - want).max()))
        agree += int((got.argmax(1) == want.argmax(1)).sum())
        total += want.shape[0] * want.shape[2] * want.shape[3]
    return diff, agree / total


@pytest.mark.parametrize("name", list(GENOMES))
def test_brevitas_model_computes_the_evaluated_model(name: str, trained, small_space: SearchSpace) -> None:
    """Equal within float rounding: the same codes at every conv and logits within 1e-4, or a first
    divergence made only of one-code flips of values on a rounding boundary (then propagated)."""
    _, _, val = trained
    subnet = _subnet(trained, small_space, name)
    model = to_brevitas(subnet)
    images = torch.stack([val[i][0] for i in range(6)])
    diff, agreement = parity(subnet, model, [images])
    print(f"\nbrevitas vs evaluated model ({name}): max |logit diff| {diff:.3g}, argmax agreement {agreement:.5f}")
    assert agreement >= 0.99
    for i in range(len(images)):
        x = images[i:i + 1]
        check_codes(brevitas_codes(subnet, model, x), _logits(model, x), _logits(subnet, x), atol=1e-4)


@pytest.mark.parametrize("name", ["w4a4", "mixed"])
def test_every_quantizer_holds_the_subnets_grid(name: str, trained, small_space: SearchSpace) -> None:
    """Input and output quantizers give PACT's values bit for bit; the weights are the folded codes times
    per-channel scales at the grid's bit width."""
    subnet = _subnet(trained, small_space, name)
    model = to_brevitas(subnet)
    g = torch.Generator().manual_seed(0)
    for op in subnet.plan(48, 48).convs():
        unit, brev = subnet.unit(op.label), model.unit(op.label)
        x = torch.randn(2, op.cin, 5, 5, generator=g) * 3
        with torch.no_grad():
            assert torch.equal(brev.input_quant(x), unit.conv.act_quant(x)), op.label
            if unit.out_quant is not None:
                assert torch.equal(brev.act(x), unit.out_quant(torch.relu(x) if op.relu else x)), op.label
            weight = brev.conv.quant_weight()
        codes, scale, _ = fold_batchnorm(unit.conv, unit.bn)
        assert torch.equal(weight.int().to(torch.int8), torch.from_numpy(codes)), op.label
        np.testing.assert_allclose(weight.scale.reshape(-1).numpy(), scale, rtol=1e-6, err_msg=op.label)
        assert int(weight.bit_width) == unit.conv.weight_quant.grid_bits == model.bits[op.label].weight
        assert model.bits[op.label].input == unit.conv.act_quant.grid_bits


def test_brevitas_qonnx_export_runs_under_qonnx_executor(trained, small_space: SearchSpace) -> None:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    _, _, val = trained
    model = to_brevitas(_subnet(trained, small_space, "mixed"))
    onnx_model = brevitas_qonnx(model, 48, 48)
    clean = cleanup_model(ModelWrapper(onnx_model))
    quant_bits = {int(clean.get_initializer(n.input[3])) for n in clean.graph.node if n.op_type == "Quant"}
    wanted = {b for bits in model.bits.values() for b in (bits.weight, bits.input, bits.output) if b}
    assert {"Quant", "Conv"} <= {n.op_type for n in clean.graph.node} and quant_bits == wanted
    run = qonnx_runner(onnx_model)
    x = val[0][0][None]
    got, want = run(x.numpy()), _logits(model, x)
    diff = float(np.abs(got - want).max())
    agreement = float(np.mean(got.argmax(1) == want.argmax(1)))
    print(f"\nbrevitas QONNX (qonnx executor) vs brevitas model: max |logit diff| {diff:.3g}, agreement {agreement:.5f}")
    assert got.shape == want.shape and agreement >= 0.99


def test_saved_model_loads_without_pickle_and_computes_the_same(trained, small_space: SearchSpace,
                                                                tmp_path: Path) -> None:
    _, _, val = trained
    subnet = apply_target(copy.deepcopy(_subnet(trained, small_space, "w8a8")), "ort")  # 7-bit weight grids
    model = to_brevitas(subnet)
    assert {bits.weight for bits in model.bits.values()} <= {7, 8}
    path = tmp_path / "net_brevitas.pt"
    save_brevitas(model, path)
    assert path.read_bytes() == brevitas_bytes(model)
    doc = torch.load(path, weights_only=True)
    assert "genome:" in doc["policy"] and all(isinstance(v, torch.Tensor) for v in doc["state_dict"].values())
    loaded = load_brevitas(path, small_space)
    assert isinstance(loaded, BrevitasSegNet) and loaded.bits == model.bits and loaded.genome == model.genome
    x = torch.stack([val[i][0] for i in range(2)])
    assert np.array_equal(_logits(loaded, x), _logits(model, x))


def test_loading_refuses_another_space_and_other_files(trained, small_space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "net_brevitas.pt"
    save_brevitas(to_brevitas(_subnet(trained, small_space, "w4a4")), path)
    other = SearchSpace(SpaceSpec(stem_channels=(8, 12, 16), stem_strides=(2, 2, 1), stage_channels=(16, 24, 40),
                                  highres_channels=16, head_channels=(16, 16)))
    with pytest.raises(QnasError, match="do not fit this space"):
        load_brevitas(path, other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(QnasError, match="not a brevitas model"):
        load_brevitas(junk, small_space)
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(QnasError, match="not a brevitas model"):
        load_brevitas(junk, small_space)
    with pytest.raises(QnasError, match="not found"):
        load_brevitas(tmp_path / "missing.pt", small_space)
