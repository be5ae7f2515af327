"""FPGA front ends: the ``qonnx`` file through qonnx's channels-last preparation (the first step of
hls4ml's and FINN's QONNX ingestion), and the ``qonnx-hls4ml`` file through hls4ml's converter and its
C simulation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.util.cleanup import cleanup_model

from qnas.export.fpga import Hls4mlGraph, export_hls4ml_model, to_channels_last, to_hls4ml
from qnas.export.network import RandomLayers, network_graph
from qnas.export.qonnx import QonnxGraph, export_qonnx_model
from qnas.space import SearchSpace, network_plan
from qnas.train import cut_subnet

CHANNELS_LAST = "qonnx.custom_op.channels_last"
SIZE = 32  # a small input: qonnx's transformations cost time by node count, hls4ml's C simulation by pixels
SLOW = pytest.mark.slow


def _genome(space: SearchSpace, which: str):
    """``smallest``: every searched layer at 4 bits (the input conv and the classifier are fixed at 8), smallest
    depths; ``mixed``: a random mixed-precision genome (4/6/8) at the smallest depths; ``4bit``, ``largest``, ``deep mixed``: the larger ones (qonnx's transformations take
    about a second per 10 nodes on 2 cores, so these are slow)."""
    if which == "smallest":
        return space.smallest()
    if which == "mixed":
        return space.sample(np.random.default_rng(11), depths=(min(space.spec.depths),))
    if which == "4bit":
        return space.uniform(4, 3, 6, 3)
    if which == "largest":
        return space.largest()
    return space.sample(np.random.default_rng(5))


def _bits(genome, space: SearchSpace) -> list[tuple[int, int]]:
    return sorted((op.abits, op.wbits) for op in network_plan(space.spec, genome, SIZE, SIZE).convs())


@pytest.mark.parametrize("which", ["smallest", "mixed", pytest.param("4bit", marks=SLOW),
                                   pytest.param("largest", marks=SLOW), pytest.param("deep mixed", marks=SLOW)])
def test_qonnx_file_passes_the_fpga_front_end_steps_and_still_equals_the_model(trained, small_space: SearchSpace,
                                                                               which: str) -> None:
    """cleanup_model, ConvertToChannelsLastAndClean and InferDataTypes take the file as written; every conv
    is then channels-last with no transpose left but at the graph's ends, reads the searched bit widths,
    and the result computes the model's logits."""
    supernet, images, val = trained
    genome = _genome(small_space, which)
    subnet = cut_subnet(supernet, genome, images)
    x = val[1][0][None][..., :SIZE, :SIZE].contiguous()
    with torch.no_grad():
        ref = subnet(x).numpy()
    wrapper = cleanup_model(ModelWrapper(export_qonnx_model(subnet, SIZE, SIZE)))
    wrapper = wrapper.transform(ConvertToChannelsLastAndClean()).transform(InferDataTypes())
    convs = wrapper.get_nodes_by_op_type("Conv")
    assert convs and all(n.domain == CHANNELS_LAST for n in convs)
    assert len(wrapper.get_nodes_by_op_type("Transpose")) == 2  # the image in, the logits out
    types = [(wrapper.get_tensor_datatype(n.input[0]), wrapper.get_tensor_datatype(n.input[1])) for n in convs]
    assert all(a.is_integer() and w.is_integer() and w.signed() for a, w in types)
    assert sorted((a.bitwidth(), w.bitwidth()) for a, w in types) == _bits(genome, small_space)
    out = execute_onnx(wrapper, {wrapper.graph.input[0].name: x.numpy()})[wrapper.graph.output[0].name]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5


def test_the_files_are_channels_last_between_convs(small_space: SearchSpace) -> None:
    """Each conv reads and writes through a transpose (which qonnx's own cancel), per-channel constants have
    no batch axis, and the hls4ml form resizes by integer scales and concatenates two tensors at a time."""
    plan = network_plan(small_space.spec, small_space.smallest(), SIZE, SIZE)
    for writer in (QonnxGraph, Hls4mlGraph):
        model = network_graph(plan, RandomLayers(0), writer).model()
        producers = {o: n for n in model.graph.node for o in n.output}
        consumers = {i: n for n in model.graph.node for i in n.input}
        for conv in (n for n in model.graph.node if n.op_type == "Conv"):
            assert producers[conv.input[0]].op_type == "Transpose"
            assert consumers[conv.output[0]].op_type == "Transpose"
        inits = {t.name: t for t in model.graph.initializer}
        assert all(len(inits[n.input[1]].dims) == 1 for n in model.graph.node
                   if n.op_type == "Mul" and n.input[1].startswith("step"))
        resizes = [n for n in model.graph.node if n.op_type == "Resize"]
        concats = [n for n in model.graph.node if n.op_type == "Concat"]
        assert resizes and concats and all(a.i == 3 for n in concats for a in n.attribute if a.name == "axis")
        if writer is Hls4mlGraph:
            assert all(len(n.input) == 3 and n.input[2].startswith("scales") for n in resizes)
            assert len(concats) == 3 and all(len(n.input) == 2 for n in concats)  # 3 stages + the high-res branch
        else:
            assert len(concats) == 1 and all(n.input[3].startswith("sizes") for n in resizes)


def test_hls4ml_form_resizes_by_sizes_where_a_factor_is_not_an_integer(small_space: SearchSpace) -> None:
    plan = network_plan(small_space.spec, small_space.smallest(), 40, 40)  # stride 16: 40 -> 10, 5, 3 (10 / 3)
    with pytest.warns(UserWarning, match="not by an integer factor"):
        model = network_graph(plan, RandomLayers(0), Hls4mlGraph).model()
    assert any(n.op_type == "Resize" and len(n.input) == 4 for n in model.graph.node)


@pytest.fixture(scope="module")
def hls4ml_model(trained, small_space: SearchSpace, tmp_path_factory: pytest.TempPathFactory):
    """The smallest (4-bit) policy as a qonnx-hls4ml file, its channels-last form and hls4ml's model."""
    pytest.importorskip("hls4ml")
    supernet, images, val = trained
    subnet = cut_subnet(supernet, small_space.smallest(), images)
    prepared = to_channels_last(export_hls4ml_model(subnet, SIZE, SIZE))
    hls = to_hls4ml(prepared, tmp_path_factory.mktemp("hls4ml") / "prj")
    xs = [val[i][0][None][..., :SIZE, :SIZE].contiguous() for i in range(3)]
    return subnet, prepared, hls, xs


def test_hls4ml_parses_the_qonnx_hls4ml_file(hls4ml_model) -> None:
    """hls4ml's QONNX converter (io_stream) reads every node: integer convs at the searched widths, resizes,
    two-input concatenations and residual sums; the channels-last file it read equals the model."""
    subnet, prepared, hls, xs = hls4ml_model
    layers = list(hls.get_layers())
    kinds = {layer.class_name for layer in layers}
    assert {"Conv2D", "PointwiseConv2D", "DepthwiseConv2D", "Resize", "Concatenate", "Merge"} <= kinds, kinds
    convs = [layer for layer in layers if layer.class_name in ("Conv2D", "PointwiseConv2D", "DepthwiseConv2D")]
    assert len(convs) == len(prepared.get_nodes_by_op_type("Conv"))
    widths = sorted(layer.weights["weight"].type.precision.width for layer in convs)
    plan = subnet.plan(SIZE, SIZE)
    assert widths == sorted(op.wbits for op in plan.convs())
    with torch.no_grad():
        ref = subnet(xs[0]).numpy()
    out = execute_onnx(prepared, {prepared.graph.input[0].name: xs[0].numpy()})[prepared.graph.output[0].name]
    assert np.abs(out - ref).max() <= 1e-5


@SLOW
def test_hls4ml_c_simulation_agrees_with_the_model(hls4ml_model) -> None:
    """hls4ml's C simulation (g++, 30-60 s on 2 cores, hence slow; hls4ml's fixed-point types, qnas.export.fpga.PRECISION
    wherever the file fixes none) agrees with the model to ~1e-5 in the logits and in every pixel's class."""
    if shutil.which("g++") is None:
        pytest.skip("hls4ml's C simulation needs g++")
    subnet, _, hls, xs = hls4ml_model
    hls.compile()
    for x in xs:
        with torch.no_grad():
            ref = subnet(x).numpy()
        out = np.asarray(hls.predict(np.ascontiguousarray(x.numpy()))).reshape(ref.shape)
        assert np.abs(out - ref).max() <= 1e-4
        assert np.array_equal(out.argmax(1), ref.argmax(1))


@SLOW
@pytest.mark.xfail(strict=True, reason="hls4ml 1.3 reads a channels-last Resize's height from the width axis and its "
                   "width from the height axis (converters/onnx/reshape.py, parse_resize_layer), so at H != W its "
                   "output shape is [W*s, H*s, C]: only square inputs resize correctly")
def test_hls4ml_resizes_a_rectangular_input(trained, small_space: SearchSpace, tmp_path) -> None:
    pytest.importorskip("hls4ml")
    supernet, images, _ = trained
    subnet = cut_subnet(supernet, small_space.smallest(), images)
    hls = to_hls4ml(export_hls4ml_model(subnet, SIZE, 2 * SIZE), tmp_path / "prj")
    resizes = [layer for layer in hls.get_layers() if layer.class_name == "Resize"]
    assert resizes
    for layer in resizes:
        (h, w, _), (oh, ow, _) = layer.get_input_variable().shape, layer.get_output_variable().shape
        assert oh / h == ow / w  # one factor for both axes, as the file says
