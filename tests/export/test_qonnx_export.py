"""The ``qonnx`` profile: executed by qonnx it equals the frozen model; its cost equals ``qnas cost``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.util.cleanup import cleanup_model
from qonnx.util.inference_cost import inference_cost

from qnas.cost import genome_cost
from qnas.export.qonnx import export_qonnx_model
from qnas.space import SearchSpace
from qnas.supernet import freeze
from qnas.train import cut_subnet
from tests.export.conftest import export_genomes


def _run_qonnx(model, x: np.ndarray) -> np.ndarray:
    wrapper = cleanup_model(ModelWrapper(model))
    return execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[wrapper.graph.output[0].name]


@pytest.mark.parametrize("index", range(6))
def test_qonnx_file_equals_the_frozen_model(trained, small_space: SearchSpace, index: int) -> None:
    supernet, images, val = trained
    genome = export_genomes(small_space)[index]
    subnet = cut_subnet(supernet, genome, images)
    x = val[index][0][None]
    with torch.no_grad():
        ref = subnet(x).numpy()
    model = export_qonnx_model(subnet, small_space.spec, genome, x.shape[2], x.shape[3])
    out = _run_qonnx(model, x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    # one Quant per conv input and per conv weight, at the policy's bit widths
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert sum(n.op_type == "Quant" for n in model.graph.node) >= 2 * len(convs)


@pytest.mark.parametrize("index", [1, 3])  # the all-4-bit extreme and a random mixed-precision subnet
def test_inference_cost_of_the_qonnx_file_equals_qnas_cost(trained, small_space: SearchSpace, index: int) -> None:
    """qonnx counts MACs and BitOps on the file itself (about 15 s a file: its constant folding is slow)."""
    supernet, _, _ = trained
    genome = export_genomes(small_space)[index]
    subnet = freeze(supernet, genome)
    model = export_qonnx_model(subnet, small_space.spec, genome, 48, 64)
    counted = inference_cost(ModelWrapper(model), discount_sparsity=False)["total_cost"]
    cost = genome_cost(small_space.spec, genome, 48, 64)
    assert counted["unsupported"] in ("set()", "{'Resize'}")  # nearest resizing copies: no MACs
    assert counted["total_macs"] == cost.macs
    assert counted["total_bops"] == cost.bitops
