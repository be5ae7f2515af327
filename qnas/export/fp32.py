"""The ``onnx-fp32`` profile: the float twin of a subnet (quantizers off), for speed comparisons."""

from __future__ import annotations

import copy
import os
import tempfile
import warnings

import onnx
import torch

from qnas.export.profiles import register_profile
from qnas.supernet.network import SegNet

__all__ = ["export_fp32_model", "float_twin"]


def float_twin(model: SegNet) -> SegNet:
    """A copy of ``model`` with its quantizers off."""
    twin = copy.deepcopy(model).eval()
    twin.set_quantization(False)
    return twin


@register_profile("onnx-fp32", suffix="_fp32.onnx", runtime="onnxruntime", exact=False, reference=float_twin,
                  help="the float twin (quantizers off) for speed comparisons")
def export_fp32_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The model with its quantizers off, traced by ``torch.onnx.export`` (``model`` is left as it is)."""
    model = float_twin(model)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are static at export
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate (STYLE.md)
        path = os.path.join(tmp, "fp32.onnx")
        torch.onnx.export(model, (torch.zeros(1, model.spec.in_channels, height, width),), path,
                          input_names=["image"], output_names=["logits"], opset_version=17, dynamo=False)
        return onnx.load(path)
