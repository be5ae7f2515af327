"""OpenVINO as an INT8 runtime: the ``openvino`` export profile and the ``ov-cpu`` latency backend.

The file is the canonical Q/DQ graph of ``qnas.export.qdq`` with uint8 codes for unsigned grids
(``MixedQdqGraph``): OpenVINO's low-precision transformations turn each Q/DQ pair into a
FakeQuantize and run every conv as an int8 kernel (u8 or i8 activations, i8 per-channel weights).
No widening is needed, so the file computes the model as searched, up to rounding-boundary flips
(OpenVINO's kernels requantize in their own order), and one departure of OpenVINO's own: where it fuses
a projection conv, the residual Add and the requantization after it into one conv (a residual sum whose
only readers quantize it), its CPU plugin skips the projection's rounding
(``benchmarks/results/openvino_postops.md``; in the two default-space policies measured, only the last
residual block, changing 0.0001-0.0002 of the pixels).

Except on x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake): there OpenVINO's int8
convolutions (``jit_avx2_I8``, ``jit_avx2_1x1_I8``) multiply u8 activations by s8 weights with
``vpmaddubsw``, which sums pairs of products in int16 and saturates at 32767; signed activations
are first shifted to u8 (+128). Measured layer by layer on the default run's W8A8 network: the
first conv (8-bit unsigned image codes up to 255, 8-bit weights) already differs from the file by
up to 65 codes on 11% of its outputs, while with 7-bit unsigned codes (0..127, pair sums below
32767) the first layers agree exactly and the first differences appear at the first conv that
reads signed codes. ``vnni()`` says whether this CPU has the instructions that avoid it.

``int8_coverage`` reads what OpenVINO's CPU plugin executes (its runtime graph: each executed node's
layer type, precision, and the original ONNX nodes fused into it) and says which convs ran in int8.
Every OpenVINO session here sets ``INFERENCE_PRECISION_HINT=f32``: on CPUs with bf16, OpenVINO
otherwise silently runs the float layers (and the float twin) in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from qnas.errors import QnasError
from qnas.export.latency import Backend, Measurement, _cpu_model, register_backend, timed
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.export.profiles import register_profile
from qnas.export.qdq import MixedQdqGraph
from qnas.supernet.network import SegNet

__all__ = ["vnni", "OvCpu", "export_openvino_model", "compile_openvino", "openvino_runner", "run_openvino",
           "int8_coverage", "Coverage", "unrounded_residual_sums", "with_outputs"]

INT8_PRECISIONS = {"u8", "i8"}
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


def vnni() -> bool:
    """Whether this CPU sums u8 x s8 products into int32 directly (no int16 pair saturation)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & VNNI_FLAGS)


def compile_openvino(model: onnx.ModelProto, threads: int = 1, profile: bool = False) -> Any:
    """An OpenVINO CPU compiled model of ``model``: ``threads`` inference threads, one stream, f32 hint."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": profile}
    return core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)


def openvino_runner(model: onnx.ModelProto):
    """The file compiled once by OpenVINO's CPU plugin (f32 precision hint): input -> first output."""
    request = compile_openvino(model).create_infer_request()
    return lambda x: request.infer({0: x})[0].copy()


def run_openvino(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The file's first output for input ``x``, executed by OpenVINO's CPU plugin."""
    return openvino_runner(model)(x)


@dataclass(frozen=True)
class Coverage:
    """Which of a file's convs OpenVINO executed with int8 kernels."""

    int8: list[str]  # ONNX Conv node names executed in an int8 kernel
    other: dict[str, str]  # ONNX Conv node name -> the precision / kernel it ran in instead
    kernels: dict[str, int]  # executed kernel name (e.g. jit_avx2_1x1_I8) -> how many conv nodes ran in it

    @property
    def total(self) -> int:
        return len(self.int8) + len(self.other)


def int8_coverage(model: onnx.ModelProto, threads: int = 1) -> Coverage:
    """Run ``model`` once with performance counters and map every ONNX Conv to the kernel that ran it."""
    compiled = compile_openvino(model, threads, profile=True)
    request = compiled.create_infer_request()
    inputs = compiled.inputs
    request.infer({i: np.zeros(tuple(p.get_shape()), np.float32) for i, p in enumerate(inputs)})
    kernel = {p.node_name: p.exec_type for p in request.profiling_info}
    ran_in: dict[str, tuple[str, str, str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
        for original in info["originalLayersNames"].astype(str).split(","):
            if original:
                ran_in[original] = (layer, precision, kernel.get(op.get_friendly_name(), "?"))
    int8, other, kernels = [], {}, {}
    for node in (n for n in model.graph.node if n.op_type == "Conv"):
        layer, precision, exec_type = ran_in.get(node.name, ("missing", "?", "?"))
        if layer in ("Convolution", "GroupConvolution") and precision in INT8_PRECISIONS:
            int8.append(node.name)
            kernels[exec_type] = kernels.get(exec_type, 0) + 1
        else:
            other[node.name] = f"{layer} {precision} {exec_type}"
    return Coverage(int8, other, kernels)


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` with the float tensors ``names`` as extra graph outputs (OpenVINO then cannot fuse a
    conv chain past them: ``unrounded_residual_sums``)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names)
    return copy


def unrounded_residual_sums(model: onnx.ModelProto) -> list[str]:
    """The residual ``Add`` outputs of ``model`` whose requantization OpenVINO's CPU plugin computes without one
    rounding: it fuses the projection conv, its requantization (a FakeQuantize), the Add (a Sum post-op) and a
    FakeQuantize after it into one conv, and its post-op composer then drops the first FakeQuantize's rounding
    (``benchmarks/results/openvino_postops.md``). Making such a sum a graph output too stops the fusion."""
    fused = set()
    for op in compile_openvino(model).get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        names = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
        adds = [i for i, name in enumerate(names) if name.startswith("Add")]
        if info["layerType"].astype(str) == "Convolution" and adds and \
                any(name.startswith("Quantize") for name in names[:adds[0]]) and \
                any(name.startswith("Quantize") for name in names[adds[0] + 1:]):
            fused.add(names[adds[0]])  # OpenVINO names fused nodes by their ONNX node names
    sums = [n.output[0] for n in model.graph.node if n.name in fused]
    if len(sums) != len(fused):
        raise QnasError(f"OpenVINO's fused node names no longer name the file's Add nodes ({sorted(fused)})")
    return sums


@register_profile("openvino", suffix="_openvino_qdq.onnx", runtime="OpenVINO (CPU plugin)", runner=openvino_runner,
                  exact=False,
                  help="OpenVINO Q/DQ (per-channel int8 weights, per-tensor u8/i8 activations, every conv an int8 "
                       "kernel in OpenVINO's CPU plugin; no widening)")
def export_openvino_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen model as an OpenVINO Q/DQ graph (float image in, logits out)."""
    check_exportable(model)
    return network_graph(model.plan(height, width), FrozenLayers(model), MixedQdqGraph).model()


@register_backend("ov-cpu")
class OvCpu(Backend):
    """OpenVINO's CPU plugin: one stream, fixed inference threads, f32 precision hint (no silent bf16)."""

    writer = MixedQdqGraph
    profile = "openvino"
    model_kind = "Q/DQ int8 (u8/i8 activations), random codes"

    def fingerprint(self) -> dict[str, Any]:
        import os

        import openvino as ov

        return {"backend": self.name, "cpu": _cpu_model(), "cores": os.cpu_count(), "openvino": ov.__version__,
                "threads": self.threads, "precision_hint": "f32"}

    def assert_integer(self, model: onnx.ModelProto, what: str) -> None:
        coverage = int8_coverage(model, self.threads)
        if coverage.other:
            name, how = next(iter(coverage.other.items()))
            raise QnasError(f"{what}: OpenVINO ran {len(coverage.other)} of {coverage.total} convs outside int8 "
                            f"(e.g. {name}: {how})")

    def measure(self, model: onnx.ModelProto, warmup: int, repeats: int) -> Measurement:
        compiled = compile_openvino(model, self.threads)
        request = compiled.create_infer_request()
        rng = np.random.default_rng(0)
        feeds = {}
        for i, port in enumerate(compiled.inputs):
            shape, kind = tuple(port.get_shape()), port.get_element_type().get_type_name()
            if kind in ("u8", "i8"):
                low, high = (0, 256) if kind == "u8" else (-128, 128)
                feeds[i] = rng.integers(low, high, size=shape).astype(np.uint8 if kind == "u8" else np.int8)
            else:
                feeds[i] = rng.random(shape, dtype=np.float32)
        return timed(lambda: request.infer(feeds), warmup, repeats)
