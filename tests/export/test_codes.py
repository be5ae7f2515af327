"""The integer-codes writers flag convs whose float32 sums could round (wide 8-bit layers), never more than
the model sums exactly."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st

from qnas.config import load_config
from qnas.export.graph import Grid, LayerParams
from qnas.export.network import RandomLayers, network_graph
from qnas.export.qlinear import QLinearGraph
from qnas.export.qonnx import QonnxGraph
from qnas.pipeline import inexact_convs
from qnas.quant.grids import BIAS_CODE_LIMIT, FLOAT32_EXACT_LIMIT, accumulator_bound, weight_levels
from qnas.space import SearchSpace, network_plan


def test_worst_case_sum_counts_fan_in_codes_and_bias() -> None:
    codes = np.zeros((2, 3, 3, 3), np.int8)
    codes[0, 0, 0, 0], codes[1, 2, 2, 2] = -127, 5
    layer = LayerParams(codes, np.ones(2, np.float32), np.array([0.5, -40.0], np.float32), Grid.unsigned(0.5))
    # 27 inputs of at most 255, weights of at most 127, bias codes round(b / (0.5 * 1)) = 1 and -80
    assert layer.worst_case_sum(with_bias=True) == 27 * 255 * 127 + 80
    assert layer.worst_case_sum(with_bias=False) == 27 * 255 * 127
    signed = LayerParams(codes, np.ones(2, np.float32), None, Grid.symmetric(1.0, 6))
    assert signed.worst_case_sum(with_bias=True) == 27 * 31 * 127


@settings(max_examples=300, deadline=None)
@given(fan_in=st.integers(1, 2048), act_bits=st.integers(2, 8), act_signed=st.booleans(),
       weight_bits=st.integers(2, 8), with_bias=st.booleans(), data=st.data())
def test_an_exporter_bound_never_exceeds_the_model_bound(fan_in, act_bits, act_signed, weight_bits, with_bias,
                                                         data) -> None:
    """Whatever codes a layer holds (within its bit widths, bias within the int32 limit), the bound an
    exporter checks is at most the model's: every conv an exporter lists, the model sums exactly."""
    grid = Grid.symmetric(1.0, act_bits) if act_signed and act_bits >= 2 else Grid.unsigned(1.0, act_bits)
    w_max = weight_levels(weight_bits)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    codes = rng.integers(-w_max, w_max + 1, (1, fan_in, 1, 1)).astype(np.int8)
    codes.flat[0] = data.draw(st.sampled_from([-w_max, w_max]))  # the extreme code, often
    bias_code = data.draw(st.integers(-BIAS_CODE_LIMIT, BIAS_CODE_LIMIT))
    layer = LayerParams(codes, np.ones(1, np.float32), np.array([bias_code], np.float32), grid,
                        weight_bits=weight_bits)
    model = accumulator_bound(fan_in, act_bits, grid.signed, weight_bits, with_bias)
    assert layer.worst_case_sum(with_bias) <= model


def test_wide_layers_are_listed_in_the_file_and_by_the_cli() -> None:
    wide = SearchSpace(load_config("configs/cityscapes.yaml").space)
    plan = network_plan(wide.spec, wide.largest(), 64, 128)
    graph = network_graph(plan, RandomLayers(0), QonnxGraph)
    assert graph.inexact_convs and all(label.endswith(".pw2") for label in graph.inexact_convs)
    assert inexact_convs(onnx.load_from_string(graph.model().SerializeToString())) == graph.inexact_convs
    # an integer engine's file has no such convs; nor does the default space's network
    assert not network_graph(plan, RandomLayers(0), QLinearGraph).inexact_convs
    small = SearchSpace(load_config("configs/digits.yaml").space)
    assert not network_graph(network_plan(small.spec, small.largest(), 64, 128), RandomLayers(0),
                             QonnxGraph).inexact_convs
    assert FLOAT32_EXACT_LIMIT == 2**24
