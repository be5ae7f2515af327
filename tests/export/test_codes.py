"""The integer-codes writers flag convs whose float32 sums could round (wide 8-bit layers)."""

from __future__ import annotations

import numpy as np
import onnx

from qnas.cli.export_commands import inexact_convs
from qnas.config import load_config
from qnas.export.graph import FLOAT32_EXACT_LIMIT, Grid, LayerParams
from qnas.export.network import RandomLayers, network_graph
from qnas.export.qlinear import QLinearGraph
from qnas.export.qonnx import QonnxGraph
from qnas.space import SearchSpace


def test_worst_case_sum_counts_fan_in_codes_and_bias() -> None:
    codes = np.zeros((2, 3, 3, 3), np.int8)
    codes[0, 0, 0, 0], codes[1, 2, 2, 2] = -127, 5
    layer = LayerParams(codes, np.ones(2, np.float32), np.array([0.5, -40.0], np.float32), Grid.unsigned(0.5))
    # 27 inputs of at most 255, weights of at most 127, bias codes round(b / (0.5 * 1)) = 1 and -80
    assert layer.worst_case_sum() == 27 * 255 * 127 + 80
    signed = LayerParams(codes, np.ones(2, np.float32), None, Grid.symmetric(1.0, 6))
    assert signed.worst_case_sum() == 27 * 31 * 127


def test_wide_layers_are_listed_in_the_file_and_by_the_cli() -> None:
    wide = SearchSpace(load_config("configs/cityscapes.yaml").space)
    graph = network_graph(wide.spec, wide.largest(), 64, 128, RandomLayers(0), QonnxGraph)
    assert graph.inexact_convs and all(label.endswith(".pw2") for label in graph.inexact_convs)
    assert inexact_convs(onnx.load_from_string(graph.model().SerializeToString())) == graph.inexact_convs
    # an integer engine's file has no such convs; nor does the default space's network
    assert not network_graph(wide.spec, wide.largest(), 64, 128, RandomLayers(0), QLinearGraph).inexact_convs
    small = SearchSpace(load_config("configs/digits.yaml").space)
    assert not network_graph(small.spec, small.largest(), 64, 128, RandomLayers(0), QonnxGraph).inexact_convs
    assert FLOAT32_EXACT_LIMIT == 2.0**24
