"""The ``trt`` profile: TensorRT's structural rules, and parity with the widened frozen model in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

from qnas.export.trt import TRT_OPSET, export_trt_model, widen_for_int8
from qnas.quant import PACTActivationQuant
from qnas.train import cut_subnet
from tests.export.conftest import codes_at_every_conv, export_genomes

Q_OPS = {"QuantizeLinear", "DequantizeLinear"}


def check_trt_rules(model) -> None:
    """Symmetric int8 Q/DQ only, zero point 0, no uint8, per-channel weights on axis 0, no integer Clip."""
    assert model.opset_import[0].version >= 13
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert all(t.data_type != TensorProto.UINT8 for t in model.graph.initializer)
    ops = {n.op_type for n in model.graph.node}
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert not ops & {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "Cast"}
    for node in model.graph.node:
        if node.op_type in Q_OPS:
            zp = inits[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any()
            assert inits[node.input[1]].dtype == np.float32 and (inits[node.input[1]] > 0).all()
            if node.input[0] in inits:  # a weight: int8, per output channel
                attrs = {a.name: a.i for a in node.attribute}
                assert inits[node.input[0]].dtype == np.int8 and attrs.get("axis", 1) == 0
                assert inits[node.input[1]].shape == (inits[node.input[0]].shape[0],)
        if node.op_type == "Clip":
            assert all(inits[name].dtype == np.float32 for name in node.input[1:])
        if node.op_type == "Conv":
            assert producers[node.input[0]] == "DequantizeLinear" and producers[node.input[1]] == "DequantizeLinear"
        if node.op_type == "QuantizeLinear":  # TensorRT pairs every Q with DQs
            assert {n.op_type for n in model.graph.node if node.output[0] in n.input} == {"DequantizeLinear"}
        if node.op_type == "DequantizeLinear" and node.input[0] not in inits:
            assert producers[node.input[0]] == "QuantizeLinear"


def test_trt_file_follows_the_rules_and_computes_exactly_what_the_widened_model_computes(trained, small_space) -> None:
    """Structure, then the codes every conv reads and the logits, in onnxruntime, against the
    widened frozen model: identical (unit-scale Q/DQ makes every Conv sum integers)."""
    supernet, images, val = trained
    for genome in export_genomes(small_space):
        subnet = cut_subnet(supernet, genome, images)
        model = export_trt_model(subnet, 48, 48)
        check_trt_rules(model)
        widened = widen_for_int8(subnet).eval()
        assert not any(q.active_bits == 8 and not q.signed for q in widened.modules()
                       if isinstance(q, PACTActivationQuant))
        producers = {o: n for n in model.graph.node for o in n.output}
        code_tensors = [producers[n.input[0]].input[0] for n in model.graph.node if n.op_type == "Conv"]
        for i in range(len(val)):
            pairs, ref, out = codes_at_every_conv(widened, model, val[i][0][None], code_tensors, TensorProto.INT8, 0)
            for label, torch_codes, file_codes, _ in pairs:
                np.testing.assert_array_equal(file_codes, torch_codes, err_msg=label)
            np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
            assert np.array_equal(out.argmax(1), ref.argmax(1))


def test_trt_opset_is_at_least_13() -> None:
    assert TRT_OPSET >= 13


@pytest.mark.trt
def test_tensorrt_builds_an_int8_engine_from_the_file(trained, small_space) -> None:
    trt = pytest.importorskip("tensorrt")
    supernet, images, _ = trained
    genome = export_genomes(small_space)[3]
    subnet = cut_subnet(supernet, genome, images)
    model = export_trt_model(subnet, 48, 48)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    assert builder.build_serialized_network(network, config) is not None
