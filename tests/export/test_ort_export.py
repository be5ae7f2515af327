"""The ``ort`` profile: integer kernels only, and it computes what the fake-quantized model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto

from qnas.export.latency import FLOAT_CONV_OPS, get_backend
from qnas.export.ort import export_ort_model, fold_batchnorm
from qnas.space import SearchSpace
from qnas.space import network_plan
from qnas.train import cut_subnet
from tests.export.conftest import check_codes, codes_at_every_conv, export_genomes


def conv_inputs(model) -> list[str]:
    """The N, C, H, W codes every integer conv reads (a 1x1 conv's MatMulInteger reads them through a
    Transpose and a Reshape)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    inputs = []
    for n in model.graph.node:
        if n.op_type in ("QLinearConv", "ConvInteger", "MatMulInteger"):
            name = n.input[0]
            while n.op_type == "MatMulInteger" and producer[name].op_type in ("Reshape", "Transpose"):
                name = producer[name].input[0]
            inputs.append(name)
    return inputs


def test_ort_file_computes_what_the_frozen_model_computes(trained, small_space: SearchSpace) -> None:
    """Every conv reads the same integer codes in onnxruntime as in PyTorch, except where a value
    falls within float rounding of a rounding boundary (the two round it in different orders);
    such ties are rare where they first appear, but a flip can then propagate downstream."""
    supernet, images, val = trained
    backend = get_backend("ort-cpu", 1)
    agree = total = flips = 0
    worst = 0.0
    for genome in export_genomes(small_space):
        subnet = cut_subnet(supernet, genome, images)
        model = export_ort_model(subnet, 48, 48)
        code_tensors = conv_inputs(model)
        for i in range(len(val)):
            pairs, ref, out = codes_at_every_conv(subnet, model, val[i][0][None], code_tensors,
                                                  TensorProto.UINT8, 128)
            flips += check_codes(pairs, out, ref, atol=1e-5)
            agree += int((out.argmax(1) == ref.argmax(1)).sum())
            total += ref.shape[2] * ref.shape[3]
            worst = max(worst, float(np.abs(out - ref).max()))
        assert not set(backend.optimized_ops(model)) & FLOAT_CONV_OPS
        assert sum(n.op_type == "MatMulInteger" for n in model.graph.node) == 1  # the 1x1 classifier
    print(f"argmax agreement {agree / total:.5f} over {total} pixels, max abs diff {worst:.3g}, "
          f"{flips} boundary flips where codes first diverged")
    # This briefly trained network has small logit margins (0.99884 here); the 99.9% bound
    # is measured on the default run's trained models by benchmarks/export_parity.py.
    assert agree / total >= 0.995


def test_batchnorm_folding_keeps_codes_and_folds_scales(trained, small_space: SearchSpace) -> None:
    supernet, images, _ = trained
    genome = small_space.largest()
    subnet = cut_subnet(supernet, genome, images)
    for op in network_plan(small_space.spec, genome, 8, 8).convs():
        unit = subnet.unit(op.label)
        if unit.bn is None:
            continue
        conv, bn = unit.conv, unit.bn
        bn.weight.data[0] = -abs(float(bn.weight.data[0]))  # a negative gamma flips codes
        codes, scale = conv.weight_quant.codes(conv.weight)
        folded_codes, folded_scale, bias = fold_batchnorm(conv, bn)
        factor = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
        signs = torch.sign(factor).numpy()
        assert np.array_equal(folded_codes, (codes.numpy() * signs.reshape(-1, 1, 1, 1)).astype(np.int8))
        np.testing.assert_allclose(folded_scale, (scale.reshape(-1).double() * factor.abs()).numpy(), rtol=1e-6)
        # folded conv == conv followed by BN (eval), on the quantized input
        x = conv.act_quant(torch.randn(2, op.cin, 8, 8).abs())
        geometry = (op.stride, op.padding, op.dilation, op.groups)
        with torch.no_grad():
            expected = bn(torch.nn.functional.conv2d(x, conv.weight_quant(conv.weight), None, *geometry))
            w = torch.from_numpy(folded_codes.astype(np.float32) * folded_scale.reshape(-1, 1, 1, 1))
            got = torch.nn.functional.conv2d(x, w, torch.from_numpy(bias), *geometry)
        # equal up to the int32 bias: at most half a step of the accumulator grid per channel
        step = (conv.act_quant.grid_scale() * torch.from_numpy(folded_scale)).reshape(1, -1, 1, 1)
        assert torch.all((got - expected).abs() <= 0.5 * step + 1e-5)


def test_qlinearconv_sums_do_not_saturate_on_any_cpu() -> None:
    """The largest codes (input 255 on an unsigned 8-bit grid, weights 127) give the exact integer sum.
    x86 CPUs without VNNI sum u8 x s8 products in int16 pairs (onnxruntime's AVX2 kernels saturate at
    32767, which made a 27-input conv read 460000 instead of 874395); such layers hold uint8 weights."""
    import onnxruntime as ort

    from qnas.export.graph import Grid, LayerParams
    from qnas.export.qlinear import QLinearGraph
    from qnas.space import Conv

    for cin, groups in ((3, 1), (16, 16), (64, 1)):
        exact = (cin // groups) * 9 * 255 * 127
        g = QLinearGraph()
        x = g.quantized_input("x", (1, cin, 8, 8), Grid.unsigned(1.0))
        codes = np.full((16, cin // groups, 3, 3), 127, np.int8)
        layer = LayerParams(codes, np.ones(16, np.float32), None, x.grid)
        op = Conv(label="c", inputs=("x",), channels=16, hw=(8, 8), cin=cin, kernel=3, groups=groups, padding=1,
                  in_hw=(8, 8), wbits=8, abits=8)
        g.output(g.dequantize(g.conv(x, layer, op, Grid.unsigned(exact / 200))), "y")
        session = ort.InferenceSession(g.model().SerializeToString(), providers=["CPUExecutionProvider"])
        y = session.run(None, {"x": np.full((1, cin, 8, 8), 255, np.uint8)})[0]
        assert abs(float(y[0, 0, 4, 4]) - exact) <= 1e-6 * exact, (cin, groups, float(y[0, 0, 4, 4]), exact)


@pytest.mark.parametrize("weight", [60, 127])
def test_the_pointwise_logits_are_exact_integer_sums_on_any_cpu(weight: int) -> None:
    """The 1x1 classifier's MatMulInteger gives the exact sum of the largest codes: int8 weights where two
    products stay below the int16 pair limit (60: 2 x 255 x 60 < 32767), uint8 weights with zero point 128
    where they could saturate on CPUs without VNNI (127)."""
    import onnxruntime as ort

    from qnas.export.graph import Grid, LayerParams
    from qnas.export.qlinear import QLinearGraph, unsigned_weights
    from qnas.space import Conv

    cin, cout = 64, 11
    rng = np.random.default_rng(0)
    g = QLinearGraph()
    x = g.quantized_input("x", (1, cin, 4, 6), Grid.unsigned(0.5))
    codes = np.full((cout, cin, 1, 1), weight, np.int8)
    codes[1::2] = -weight  # odd classes: the most negative sums
    codes[2, : cin // 2] = -weight
    step = rng.uniform(0.5, 2.0, cout).astype(np.float32)
    bias = rng.normal(size=cout).astype(np.float32)
    layer = LayerParams(codes, step / np.float32(0.5), bias, x.grid)
    op = Conv(label="c", inputs=("x",), channels=cout, hw=(4, 6), cin=cin, kernel=1, in_hw=(4, 6), relu=False,
              wbits=8, abits=8)
    g.output(g.conv_to_float(x, layer, op), "y")
    model = g.model()
    matmul = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(matmul) == 1 and not any(n.op_type == "ConvInteger" for n in model.graph.node)
    assert (len(matmul[0].input) == 4) == unsigned_weights(x.grid, codes) == (weight == 127)
    pixels = rng.integers(0, 256, (1, cin, 4, 6)).astype(np.uint8)
    pixels[0, :, 0, 0] = 255  # the largest sums, where an int16 pair sum would saturate
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": pixels})[0]
    exact = np.einsum("oc,nchw->nohw", codes[:, :, 0, 0].astype(np.int64), pixels.astype(np.int64))
    want = exact.astype(np.float32) * layer.accumulator_step().reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-5)  # a saturated pair sum is off by thousands
