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


def codes_at_every_conv(subnet, model, x: torch.Tensor, code_tensors: list[str], elem_type: int | None,
                        signed_offset: int,
                        out_tensors: dict[str, str] | None = None, as_written: bool = False):
    """Each conv's input codes in PyTorch and in the ONNX file (``code_tensors``: the integer tensor
    each conv reads, in module order), plus PyTorch's and onnxruntime's logits. Each pair also holds
    PyTorch's value before rounding (codes = round(value)). ``elem_type`` None: each Q's own type.
    ``out_tensors`` maps a conv's label to
    the file's codes of its own output quantizer, compared right after that conv's input. ``as_written``:
    onnxruntime runs each Q/DQ and Conv as written (its fused u8 x s8 kernels saturate int16 pair sums
    on CPUs without VNNI)."""
    out_tensors = out_tensors or {}
    torch_codes, scaled, hooks = {}, {}, []
    convs = [m for m in subnet.modules() if isinstance(m, QConv2d)]

    def record(quant, label, value):
        codes = quant.codes(value)[0].numpy().astype(np.int64)
        torch_codes[label] = codes + (signed_offset if quant.signed else 0)
        scaled[label] = _scaled_input(quant, value)

    for m in convs:
        hooks.append(m.register_forward_pre_hook(lambda conv, args, label=m.label: record(conv.act_quant, label, args[0])))
        if m.label in out_tensors:
            quant = subnet.unit(m.label).out_quant
            hooks.append(quant.register_forward_pre_hook(
                lambda q, args, label=m.label + ".out": record(q, label, args[0])))
    with torch.no_grad():
        ref = subnet(x).numpy()
    for h in hooks:
        h.remove()
    probe = type(model)()
    probe.CopyFrom(model)
    zero_point_type = {t.name: t.data_type for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    for name in [*code_tensors, *out_tensors.values()]:
        kind = elem_type if elem_type is not None else zero_point_type[producers[name].input[2]]  # a Q's type
        probe.graph.output.append(helper.make_tensor_value_info(name, kind, None))
    options = ort.SessionOptions()
    if as_written:  # no Q/DQ fusion into onnxruntime's integer kernels: DQ, float Conv, Q, as the file says
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x.numpy()})))
    pairs = []
    for m, name in zip(convs, code_tensors):
        pairs.append((m.label, torch_codes[m.label], values[name].astype(np.int64), scaled[m.label]))
        if m.label in out_tensors:
            label = m.label + ".out"
            pairs.append((label, torch_codes[label], values[out_tensors[m.label]].astype(np.int64), scaled[label]))
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


def brevitas_codes(subnet, model, x: torch.Tensor) -> list:
    """The codes of every quantizer (each conv's input, then its output quantizer if it has one) on the
    subnet's grids in the evaluated model and in its brevitas model (``qnas.export.brevitas``), in execution
    order, with the evaluated model's value before rounding: the pairs ``check_codes`` reads."""
    seen: dict[str, dict[str, torch.Tensor]] = {"model": {}, "brevitas": {}}
    quantizers, hooks = [], []

    def record(module, side: str, label: str, relu: bool = False) -> None:
        def hook(m, args):
            seen[side][label] = torch.relu(args[0]) if relu else args[0]
        hooks.append(module.register_forward_pre_hook(hook))

    for op in subnet.plan(*x.shape[-2:]).convs():
        unit, brev = subnet.unit(op.label), model.unit(op.label)
        record(unit.conv, "model", op.label)
        record(brev.input_quant, "brevitas", op.label)
        quantizers.append((op.label, unit.conv.act_quant))
        if unit.out_quant is not None:
            record(unit.out_quant, "model", op.label + ".out")
            record(brev.act, "brevitas", op.label + ".out", relu=op.relu)  # QuantReLU reads the conv's output
            quantizers.append((op.label + ".out", unit.out_quant))
    with torch.no_grad():
        subnet(x), model(x)
    for h in hooks:
        h.remove()
    pairs = []
    for label, quant in quantizers:
        a, b = (quant.codes(seen[side][label])[0].numpy().astype(np.int64) for side in ("model", "brevitas"))
        pairs.append((label, a, b, _scaled_input(quant, seen["model"][label])))
    return pairs
