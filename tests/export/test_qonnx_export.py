"""The ``qonnx`` profile: executed by qonnx it equals the frozen model; its cost equals ``qnas cost``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.inference_cost import inference_cost

from qnas.cost import genome_cost
from qnas.export.qonnx import export_qonnx_model, run_qonnx
from qnas.space import SearchSpace
from qnas.supernet import freeze
from qnas.train import cut_subnet
from tests.export.conftest import export_genomes


# qonnx's Python executor takes about 12 s a file on a 2-core machine: two genomes by default, all six slow
SLOW = pytest.mark.slow


@pytest.mark.parametrize("index", [0, 3, pytest.param(1, marks=SLOW), pytest.param(2, marks=SLOW),
                                   pytest.param(4, marks=SLOW), pytest.param(5, marks=SLOW)])
def test_qonnx_file_equals_the_frozen_model(trained, small_space: SearchSpace, index: int) -> None:
    supernet, images, val = trained
    genome = export_genomes(small_space)[index]
    subnet = cut_subnet(supernet, genome, images)
    x = val[index][0][None]
    with torch.no_grad():
        ref = subnet(x).numpy()
    model = export_qonnx_model(subnet, x.shape[2], x.shape[3])
    out = run_qonnx(model, x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-5
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    # one Quant per conv input and per conv weight, at the policy's bit widths
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert sum(n.op_type == "Quant" for n in model.graph.node) >= 2 * len(convs)


# the all-4-bit extreme and (slow, about 45 s) a random mixed-precision subnet
@pytest.mark.parametrize("index", [1, pytest.param(3, marks=SLOW)])
def test_inference_cost_of_the_qonnx_file_equals_qnas_cost(trained, small_space: SearchSpace, index: int) -> None:
    """qonnx counts MACs and BitOps on the file itself (about 15 s a file: its constant folding is slow)."""
    supernet, _, _ = trained
    genome = export_genomes(small_space)[index]
    subnet = freeze(supernet, genome)
    model = export_qonnx_model(subnet, 48, 64)
    counted = inference_cost(ModelWrapper(model), discount_sparsity=False)["total_cost"]
    cost = genome_cost(small_space.spec, genome, 48, 64)
    assert counted["unsupported"] in ("set()", "{'Resize'}")  # nearest resizing copies: no MACs
    assert counted["total_macs"] == cost.macs
    assert counted["total_bops"] == cost.bitops
