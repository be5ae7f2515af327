"""A small trained supernet shared by the export tests, and the genomes they export."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from qnas.config import PhaseConfig, TrainConfig
from qnas.data import DigitScenes
from qnas.space import SearchSpace
from qnas.supernet import QConv2d, build_supernet
from qnas.train import Trainer, supernet_stages


@pytest.fixture(scope="package")
def trained(small_space: SearchSpace, tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    data = DigitScenes("train", 48, 48, 48, seed=0)
    cfg = TrainConfig(batch_size=8, warmup_epochs=2, phases=(PhaseConfig("all", 3, 2e-3, (2, 3, 4)),),
                      random_subnets=1, checkpoint_every=1000)
    supernet = build_supernet(small_space.spec)
    Trainer(supernet, supernet_stages(cfg, small_space), cfg, data, seed=0,
            checkpoint_path=tmp_path_factory.mktemp("export") / "c.pt").run()
    images = [torch.stack([data[i][0] for i in range(b, b + 8)]) for b in range(0, 24, 8)]
    return supernet.eval(), images, DigitScenes("val", 6, 48, 48, seed=0)



def export_genomes(space: SearchSpace) -> list:
    """The extremes, a uniform 4-bit subnet and random mixed-precision ones."""
    rng = np.random.default_rng(5)
    return [space.largest(), space.smallest(), space.uniform(4, 3, 6, 3)] + [space.sample(rng) for _ in range(3)]


def _scaled_input(quant, x: torch.Tensor) -> np.ndarray:
    """The quantizer's input divided by its step before rounding (its codes are this, rounded)."""
    a = quant.active_alpha().detach().abs().clamp_min(1e-4)
    low = -a if quant.signed else torch.zeros_like(a)
    return (torch.minimum(torch.maximum(x, low), a) / quant.grid_scale()).numpy().astype(np.float64)


def codes_at_every_conv(subnet, model, x: torch.Tensor, code_tensors: list[str], elem_type: int, signed_offset: int):
    """Each conv's input codes in PyTorch and in the ONNX file (``code_tensors``: the integer tensor
    each conv reads, in module order), plus PyTorch's and onnxruntime's logits. Each pair also holds
    PyTorch's value before rounding (codes = round(value))."""
    torch_codes, scaled, hooks = {}, {}, []
    convs = [m for m in subnet.modules() if isinstance(m, QConv2d)]
    for m in convs:
        def hook(conv, args, label=m.label):
            codes = conv.act_quant.codes(args[0])[0].numpy().astype(np.int64)
            torch_codes[label] = codes + (signed_offset if conv.act_quant.signed else 0)
            scaled[label] = _scaled_input(conv.act_quant, args[0])
        hooks.append(m.register_forward_pre_hook(hook))
    with torch.no_grad():
        ref = subnet(x).numpy()
    for h in hooks:
        h.remove()
    probe = type(model)()
    probe.CopyFrom(model)
    for name in code_tensors:
        probe.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x.numpy()})))
    pairs = [(m.label, torch_codes[m.label], values[name].astype(np.int64), scaled[m.label])
             for m, name in zip(convs, code_tensors)]
    return pairs, ref, values["logits"]


def check_codes(pairs, out: np.ndarray, ref: np.ndarray, atol: float) -> int:
    """Same codes everywhere (then logits within ``atol``), or a first divergence made only of +-1 flips
    of values within float rounding of a rounding boundary (x.5): the two sides compute such a value
    with different float operations and round it differently; a flip then propagates downstream.
    Returns the number of flips at the first divergence."""
    first = next(((label, a, b, v) for label, a, b, v in pairs if not np.array_equal(a, b)), None)
    if first is None:
        np.testing.assert_allclose(out, ref, rtol=0, atol=atol)
        return 0
    label, a, b, value = first
    flipped = a != b
    assert np.abs(a - b).max() == 1, (label, "a flip of more than one code")
    distance = np.abs(np.abs(value[flipped] - np.floor(value[flipped])) - 0.5)
    assert distance.max() <= 1e-5 * max(1.0, float(np.abs(value).max())), (label, float(distance.max()))
    return int(flipped.sum())
