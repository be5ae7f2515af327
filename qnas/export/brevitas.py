"""The ``brevitas`` export profile: a frozen subnet as a brevitas model, so brevitas' own tools apply.

``to_brevitas(subnet)`` builds, for every conv of the subnet's plan, a ``QuantIdentity`` (the conv's
input quantizer), a ``QuantConv2d`` and what follows the conv (``nn.ReLU``; or its 8-bit output
quantizer: ``QuantReLU`` after a ReLU, ``QuantIdentity`` otherwise). The network is a ``SegNet``
whose units are these: its forward runs the plan op by op as the evaluated model does.

Every quantizer has a learned scale in brevitas' ``ParameterScaling`` (a state-dict entry) at the
bit width the subnet's grid has. Activations: the PACT clip is the threshold, so brevitas' scale
(``clip / levels``) is the very float PACT divides by, and the codes are PACT's. Weights: BatchNorm
folded as the evaluated model folds it (``qnas.supernet.ops.fold_batchnorm``), per-channel
symmetric narrow range, the weight stored as ``codes * scale``, the bias as a float.

The evaluated model sums integer codes exactly and rescales once; brevitas convolves dequantized
floats. The outputs are therefore equal within float rounding (a value on a rounding boundary may
round to the neighbouring code). ``brevitas_qonnx`` is brevitas' own QONNX export of the model
(runs under ``qonnx.core.onnx_exec``), the form brevitas' FINN flow is tested against; qnas' ``qonnx``
profile writes the exact integer form instead.

Saved (``brevitas_bytes``, ``qnas export --format brevitas``) as one ``torch.save`` file of tensors,
ints and strings, read with ``torch.load(weights_only=True)``: the state dict, each conv's grid bit
widths and the policy YAML; ``load_brevitas(path, space)`` rebuilds the model.

brevitas is imported on first use (the CLI lists this profile without loading it).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from qnas.errors import QnasError
from qnas.export.ort import check_exportable, fold_batchnorm
from qnas.export.profiles import Runner, register_profile
from qnas.quant.grids import OUTPUT_QUANT_BITS, weight_levels
from qnas.quant.modules import PACTActivationQuant
from qnas.space.genome import Genome, SearchSpace
from qnas.space.networks import NOMINAL_HW, network_plan
from qnas.space.plan import Conv
from qnas.space.policy import Policy, policy_from_text, policy_to_text
from qnas.space.spec import SpaceSpec
from qnas.supernet.network import SegNet
from qnas.supernet.ops import QConv2d

__all__ = ["ConvBits", "BrevitasConv", "brevitas_quantizers", "BrevitasSegNet", "build_brevitas", "to_brevitas", "brevitas_bytes",
           "save_brevitas", "load_brevitas", "brevitas_runner", "brevitas_qonnx", "FORMAT_KEY", "FORMAT_VERSION"]

FORMAT_KEY = "qnas_brevitas"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ConvBits:
    """The grid bit widths of one conv: weights, input, 8-bit output quantizer (None: none). A deployment
    target may have narrowed them below the genome's (``qnas.quant.limit_bits``), so they are saved."""

    weight: int
    input: int
    output: int | None = None

    @classmethod
    def of_plan(cls, op: Conv) -> ConvBits:
        return cls(op.wbits, op.abits, OUTPUT_QUANT_BITS if op.out_quant else None)


@dataclass(frozen=True)
class _ConvValues:
    """What a conv's brevitas modules are set to: input and output clips, weight and bias (BN folded)."""

    input_clip: Tensor
    weight_threshold: Tensor  # [O, 1, 1, 1]: scale * levels
    weight: Tensor
    bias: Tensor | None
    output_clip: Tensor | None


@lru_cache(maxsize=1)
def brevitas_quantizers() -> SimpleNamespace:
    """brevitas quantizers with a learned (parameter) scale, set per layer with ``.let(bit_width=,
    scaling_init=)``: a per-tensor unsigned or signed narrow-range activation quantizer and a per-channel
    signed narrow-range weight quantizer, each with scale ``scaling_init / levels``, so ``scaling_init`` is
    PACT's clip (or a weight's per-channel clip, shaped [out, 1, 1, 1]); tests/quant/test_brevitas_reference.py
    checks that they quantize exactly as qnas' quantizers do."""
    from brevitas.inject import ExtendedInjector
    from brevitas.inject.enum import RestrictValueType, ScalingImplType, ScalingPerOutputType
    from brevitas.quant.base import NarrowIntQuant, UintQuant
    from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver

    class ParamScale(ExtendedInjector):
        scaling_impl_type = ScalingImplType.PARAMETER
        restrict_scaling_type = RestrictValueType.FP

    class UintActPerTensorParam(ParamScale, UintQuant, ActQuantSolver):
        scaling_per_output_type = ScalingPerOutputType.TENSOR

    class NarrowIntActPerTensorParam(ParamScale, NarrowIntQuant, ActQuantSolver):
        scaling_per_output_type = ScalingPerOutputType.TENSOR

    class NarrowIntWeightPerChannelParam(ParamScale, NarrowIntQuant, WeightQuantSolver):
        scaling_per_output_type = ScalingPerOutputType.CHANNEL

    return SimpleNamespace(uint_act=UintActPerTensorParam, int_act=NarrowIntActPerTensorParam,
                           weight=NarrowIntWeightPerChannelParam)


def _act_quant(signed: bool, bits: int, clip: Tensor | None):
    q = brevitas_quantizers()
    return (q.int_act if signed else q.uint_act).let(bit_width=bits, scaling_init=_placeholder(clip, ()))


def _placeholder(value: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """``value`` as a float32 tensor, or ones of ``shape`` (a model that ``load_state_dict`` will fill)."""
    return torch.ones(shape) if value is None else value.detach().to(torch.float32).clone()


class BrevitasConv(nn.Module):
    """One plan conv as brevitas modules: input quantizer, conv, then ReLU and / or output quantizer."""

    def __init__(self, input_quant: nn.Module, conv: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.input_quant = input_quant
        self.conv = conv
        self.act = act

    def forward(self, x: Tensor, op: Conv | None = None) -> Tensor:
        """The conv (its geometry was fixed from the plan at construction; ``op`` is what ``SegNet`` passes)."""
        return self.act(self.conv(self.input_quant(x)))


def _brevitas_conv(op: Conv, bits: ConvBits, values: _ConvValues | None) -> BrevitasConv:
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU

    v = values
    input_quant = QuantIdentity(act_quant=_act_quant(op.signed_input, bits.input, None if v is None else v.input_clip))
    threshold = _placeholder(None if v is None else v.weight_threshold, (op.cout, 1, 1, 1))
    conv = QuantConv2d(op.cin, op.cout, op.kernel, stride=op.stride, padding=op.padding, dilation=op.dilation,
                       groups=op.groups, bias=op.batchnorm or op.bias,
                       weight_quant=brevitas_quantizers().weight.let(bit_width=bits.weight, scaling_init=threshold))
    if v is not None:
        with torch.no_grad():
            conv.weight.copy_(v.weight)
            if conv.bias is not None:
                conv.bias.copy_(v.bias)
    if op.out_quant:
        if bits.output is None:
            raise ValueError(f"{op.label}: the plan gives this conv an output quantizer; its bit width is missing")
        quant = _act_quant(not op.relu, bits.output, None if v is None else v.output_clip)
        act = QuantReLU(act_quant=quant) if op.relu else QuantIdentity(act_quant=quant)
    else:
        act = nn.ReLU() if op.relu else nn.Identity()
    return BrevitasConv(input_quant, conv, act)


class BrevitasSegNet(SegNet):
    """A subnet whose every conv is brevitas modules (``BrevitasConv``); ``bits`` holds each conv's grid
    bit widths. Its forward runs the plan at the input's resolution, as the evaluated ``SegNet`` does."""

    def __init__(self, spec: SpaceSpec, genome: Genome, units: Mapping[str, BrevitasConv],
                 bits: Mapping[str, ConvBits]) -> None:
        super().__init__(spec, genome, units)
        self.bits = dict(bits)


def _convs(spec: SpaceSpec, genome: Genome) -> list[Conv]:
    return network_plan(spec, genome, *NOMINAL_HW).convs()


def build_brevitas(spec: SpaceSpec, genome: Genome, bits: Mapping[str, ConvBits] | None = None,
                   values: Mapping[str, _ConvValues] | None = None) -> BrevitasSegNet:
    """The brevitas model of ``genome``'s plan at ``bits`` (default: the genome's); without ``values``
    its scales and weights are placeholders for ``load_state_dict``."""
    ops = _convs(spec, genome)
    bits = {op.label: (bits or {}).get(op.label) or ConvBits.of_plan(op) for op in ops}
    units = {op.label: _brevitas_conv(op, bits[op.label], (values or {}).get(op.label)) for op in ops}
    return BrevitasSegNet(spec, genome, units, bits).eval()


def _conv_values(op: Conv, subnet: SegNet) -> tuple[ConvBits, _ConvValues]:
    """A frozen conv's grid bit widths and values, BatchNorm folded as the evaluated model folds it."""
    unit = subnet.unit(op.label)
    conv = unit.conv
    if not isinstance(conv, QConv2d):
        raise TypeError(f"{op.label}: a {type(conv).__name__}; export a frozen subnet (qnas.supernet.freeze)")
    codes, scale, bias = fold_batchnorm(conv, unit.bn)  # int8 codes (sign-flipped), positive scale [O], bias
    levels = weight_levels(conv.weight_quant.grid_bits)
    threshold = torch.from_numpy(scale).reshape(-1, 1, 1, 1) * levels
    step = threshold / levels  # the scale brevitas computes from this threshold, bit for bit
    out = unit.out_quant if isinstance(unit.out_quant, PACTActivationQuant) else None
    if (out is not None) != op.out_quant:
        raise ValueError(f"{op.label}: the plan {'gives' if op.out_quant else 'does not give'} this conv an output "
                         "quantizer, the model does not match")
    bits = ConvBits(conv.weight_quant.grid_bits, conv.act_quant.grid_bits, None if out is None else out.grid_bits)
    values = _ConvValues(conv.act_quant.clip(), threshold, torch.from_numpy(codes.astype(np.float32)) * step,
                         None if bias is None else torch.from_numpy(bias), None if out is None else out.clip())
    return bits, values


def to_brevitas(subnet: SegNet) -> BrevitasSegNet:
    """The frozen, quantized ``subnet`` as a brevitas model (evaluation mode) that computes what the
    evaluated ``subnet`` computes, within float rounding; ``subnet`` is put in evaluation mode."""
    check_exportable(subnet)
    bits, values = {}, {}
    for op in _convs(subnet.spec, subnet.genome):
        if op.signed_input != subnet.unit(op.label).conv.act_quant.signed:
            raise ValueError(f"{op.label}: the plan's input signedness differs from the model's quantizer")
        bits[op.label], values[op.label] = _conv_values(op, subnet)
    return build_brevitas(subnet.spec, subnet.genome, bits, values)


# -- the saved form ------------------------------------------------------------------------------------
def brevitas_bytes(model: BrevitasSegNet) -> bytes:
    """The model as one ``torch.save`` file of plain values (``torch.load(weights_only=True)`` reads it):
    the state dict, each conv's grid bit widths and the policy YAML."""
    space = SearchSpace(model.spec)
    doc = {
        FORMAT_KEY: FORMAT_VERSION,
        "policy": policy_to_text(Policy("subnet", model.genome), space),
        "bits": {label: [b.weight, b.input, 0 if b.output is None else b.output] for label, b in model.bits.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(doc, buffer)
    return buffer.getvalue()


def save_brevitas(model: BrevitasSegNet, path: str | os.PathLike[str]) -> None:
    """Write ``brevitas_bytes(model)`` to ``path`` atomically."""
    from qnas.space.policy import atomic_write_bytes

    atomic_write_bytes(path, brevitas_bytes(model))


def load_brevitas(path: str | os.PathLike[str], space: SearchSpace) -> BrevitasSegNet:
    """The brevitas model saved at ``path`` (``qnas export --format brevitas``), rebuilt for ``space`` (the
    space of the run it was cut from) and loaded without unpickling anything but tensors and plain values."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise QnasError(f"brevitas model not found: {path}") from None
    except Exception as exc:  # a zip / unpickling error of a file that is not ours
        raise QnasError(f"{path}: not a brevitas model written by qnas export ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get(FORMAT_KEY) != FORMAT_VERSION:
        raise QnasError(f"{path}: not a brevitas model written by qnas export (format {FORMAT_VERSION})")
    policy = policy_from_text(doc["policy"], space, str(path))
    bits = {label: ConvBits(w, a, o or None) for label, (w, a, o) in doc["bits"].items()}
    model = build_brevitas(space.spec, policy.genome, bits)
    try:
        model.load_state_dict(doc["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise QnasError(f"{path}: its tensors do not fit this space's network ({first})") from None
    return model.eval()


# -- running it ------------------------------------------------------------------------------------------
def brevitas_runner(model: BrevitasSegNet) -> Runner:
    """The model in evaluation mode: float32 image batch -> logits (numpy)."""
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    return run


def brevitas_qonnx(model: BrevitasSegNet, height: int, width: int) -> onnx.ModelProto:
    """brevitas' own QONNX export of the model (TorchScript path: ``dynamo=False``, as STYLE.md says) for a
    ``height`` x ``width`` image; ``qonnx.core.onnx_exec`` runs it after ``qonnx.util.cleanup``."""
    with warnings.catch_warnings():  # brevitas.graph's note that an optional kernel package is absent
        warnings.filterwarnings("ignore", "fast_hadamard_transform", UserWarning)
        from brevitas.export import export_qonnx

    model.eval()
    image = torch.zeros(1, model.spec.in_channels, height, width)
    # brevitas silences the tracer's warnings itself; without an export_path it returns the model
    return export_qonnx(model, input_t=image, dynamo=False, input_names=["image"], output_names=["logits"])


@register_profile("brevitas", suffix="_brevitas.pt", runtime="brevitas (PyTorch)", runner=brevitas_runner,
                  exact=False, serialize=brevitas_bytes,
                  help="a brevitas model (QuantConv2d, QuantReLU / QuantIdentity at the searched bit widths, learned "
                       "scales), equal to the evaluated model within float rounding; saved as a state dict with the "
                       "policy, read by qnas.export.load_brevitas (torch.load weights_only)")
def export_brevitas_model(model: SegNet, height: int, width: int) -> BrevitasSegNet:
    """The frozen subnet as a brevitas model (resolution-free; ``height`` x ``width`` is checked to be a size
    its plan can run)."""
    network_plan(model.spec, model.genome, height, width)
    return to_brevitas(model)
