"""The ``qonnx`` export profile: every tensor at its searched bit width, as QONNX ``Quant`` nodes.

For FPGA flows such as FINN, in the integer-codes form of ``qnas.export.codes``: each conv reads
the real input divided by its grid's scale through a unit-scale ``Quant`` of the layer's
activation bit width (signed narrow or unsigned), and its weight codes behind a unit-scale
``Quant`` of the layer's weight bit width, so executing the file with ``qonnx.core.onnx_exec``
reproduces the model's logits bit for bit. ``qonnx.util.inference_cost`` reads the unit-scale
Quant nodes as INTb / UINTb tensors and counts the same BitOps as ``qnas cost``.

Between convs the tensors are channels-last (N, H, W, C: ``GraphWriter.channels_last``); the graph
input and the logits stay N, C, H, W, and each ``Conv`` reads and writes through a ``Transpose``.
That is the form in which FPGA front ends take a QONNX file: hls4ml's and FINN's QONNX ingestion
starts with qonnx's ``cleanup_model`` and ``ConvertToChannelsLastAndClean``, which here only cancels
each conv's transposes against the ones it inserts. On a channels-first graph that transformation
moves transposes one node at a time (minutes for this network) and, where a residual stream forks,
moves one past the first reader only and feeds the other readers the wrong layout
(qonnx 1.0 ``MoveChanFirstDownstream``): the result no longer executes.

Brevitas' own QONNX export puts dequantized (scaled) tensors through the Conv, whose float sums
then depend on summation order; that is why this writer emits the integer form itself.
"""

from __future__ import annotations

import numpy as np
import onnx

from qnas.export.codes import IntegerCodesGraph
from qnas.export.graph import OPSET, Grid, LayerParams, QTensor
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.export.profiles import register_profile
from qnas.supernet.network import SegNet

__all__ = ["QUANT_DOMAIN", "QonnxGraph", "export_qonnx_model"]

QUANT_DOMAIN = "qonnx.custom_op.general"


class QonnxGraph(IntegerCodesGraph):
    """A QONNX writer: codes are float32 integers, the output of a unit-scale ``Quant`` node."""

    opsets = (("", OPSET), (QUANT_DOMAIN, 1))
    channels_last = True

    def _quant(self, x: str, bits: int, signed: bool, narrow: bool, stem: str) -> str:
        f32 = np.float32
        return self._node("Quant", [x, self._const("one", f32(1.0)), self._const("zero", f32(0.0)),
                                    self._const("bits", f32(bits))], stem, domain=QUANT_DOMAIN,
                          signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def _codes(self, scaled: str, grid: Grid) -> str:
        """A unit-scale Quant at the grid's bit width (a Relu first on a rectified grid)."""
        src = self._node("Relu", [scaled], "relu") if grid.rectified else scaled
        return self._quant(src, grid.bits, grid.signed, grid.signed, "codes")

    def _float_codes(self, x: QTensor) -> str:
        return x.name

    def _weight_codes(self, layer: LayerParams) -> str:
        return self._quant(self._const("w_codes", layer.codes.astype(np.float32)), layer.weight_bits,
                           True, True, "w")


def qonnx_runner(model: onnx.ModelProto):
    """The file after qonnx's cleanup, in qonnx's own node-by-node executor: input -> output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    wrapper = cleanup_model(ModelWrapper(model))
    name, out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    return lambda x: execute_onnx(wrapper, {name: x})[out]


def run_qonnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The file's output for ``x``, executed by qonnx's own executor (after its cleanup)."""
    return qonnx_runner(model)(x)


@register_profile("qonnx", suffix="_qonnx.onnx", runtime="qonnx.core.onnx_exec", runner=qonnx_runner,
                  help="QONNX Quant nodes at every searched bit width (FPGA flows such as FINN), equal to the "
                       "evaluated model bit for bit")
def export_qonnx_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen, quantized model as a QONNX graph (float image in, logits at input size out), with
    every tensor's shape recorded so that qonnx and FINN tools can take it as it is."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    check_exportable(model)
    graph = network_graph(model.plan(height, width), FrozenLayers(model), QonnxGraph).model()
    return ModelWrapper(graph).transform(InferShapes()).model
