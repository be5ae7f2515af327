"""The network as torch modules: one ``ConvUnit`` per plan conv, and a forward that runs the plan.

``SegNet.forward`` interprets the plan of its genome at the input's resolution op by op (convs,
residual adds, resizes, concatenations), so the torch model and every other consumer of the plan
compute the same network by construction. A ``Supernet`` holds elastic units sized for the largest
genome and ``set_genome`` selects the active subnet; ``freeze`` (``qnas.supernet.freeze``) turns
the active units into static ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.quant.grids import OUTPUT_QUANT_BITS
from qnas.quant.modules import PACTActivationQuant, PerChannelWeightQuant
from qnas.space.genome import Genome, SearchSpace
from qnas.space.networks import NOMINAL_HW, network_plan
from qnas.space.plan import Add, Concat, Conv, Input, Output, Plan, Resize
from qnas.space.spec import SpaceSpec
from qnas.supernet.blocks import ConvUnit
from qnas.supernet.ops import ElasticBatchNorm2d, ElasticQConv2d, QConv2d

__all__ = ["QuantSettings", "SegNet", "Supernet", "register_modules", "build_supernet", "MODULE_BUILDERS",
           "resize", "run_plan", "upgrade_state_dict"]


@dataclass(frozen=True)
class QuantSettings:
    act_init_clip: float = 4.0
    learn_weight_clip: bool = False


def resize(x: Tensor, size: Sequence[int], mode: str) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def run_plan(plan: Plan, x: Tensor, conv: Callable[[Conv, Tensor], Tensor],
             add: Callable[[Add, Tensor, Tensor], Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Interpret ``plan`` on ``x`` op by op: ``conv(op, input)`` computes each conv and ``add(op, a, b)`` each
    sum (default ``a + b``); resizes, concatenations, the input and the output as the plan says. Returns the
    output and every tensor by label (the network's forward, and the relaxed supernet's)."""
    values: dict[str, Tensor] = {}
    out = None
    for op in plan.ops:
        if isinstance(op, Conv):
            values[op.label] = conv(op, values[op.inputs[0]])
        elif isinstance(op, Add):
            a, b = values[op.inputs[0]], values[op.inputs[1]]
            values[op.label] = a + b if add is None else add(op, a, b)
        elif isinstance(op, Resize):
            values[op.label] = resize(values[op.inputs[0]], op.hw, op.mode)
        elif isinstance(op, Concat):
            values[op.label] = torch.cat([values[i] for i in op.inputs], dim=1)
        elif isinstance(op, Input):
            values[op.label] = x
        elif isinstance(op, Output):
            out = values[op.inputs[0]]
        else:
            raise TypeError(f"the network cannot run a {type(op).__name__} ({op.label})")
    return out, values


def _nest(units: Mapping[str, nn.Module]) -> nn.ModuleDict:
    """The units in ModuleDicts nested along their labels' dots ('s1.b0.pw1' -> layers['s1']['b0']['pw1']),
    so parameter names read as labels."""
    root = nn.ModuleDict()
    for label, unit in units.items():
        node = root
        *parents, leaf = label.split(".")
        for part in parents:
            if part not in node:
                node[part] = nn.ModuleDict()
            node = node[part]
        node[leaf] = unit
    return root


class SegNet(nn.Module):
    """A network that runs the plan of ``genome``: the class of a supernet and of a frozen subnet."""

    def __init__(self, spec: SpaceSpec, genome: Genome, units: Mapping[str, ConvUnit]) -> None:
        super().__init__()
        self.spec = spec
        self.genome = genome
        self.layers = _nest(units)
        self.units: dict[str, ConvUnit] = dict(units)

    def plan(self, height: int, width: int) -> Plan:
        """The plan this network runs on a ``height`` x ``width`` input."""
        return network_plan(self.spec, self.genome, height, width)

    def unit(self, label: str) -> ConvUnit:
        return self.units[label]

    def layer(self, label: str) -> nn.Module:
        """The quantized conv of ``label``."""
        return self.units[label].conv

    def run(self, x: Tensor, taps: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """The plan's output and the tensors named in ``taps``."""
        out, values = run_plan(self.plan(x.shape[-2], x.shape[-1]), x, lambda op, t: self.units[op.label](t, op))
        return out, {label: values[label] for label in taps}

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)[0]

    def quantized_layers(self) -> Iterator[nn.Module]:
        """Every quantized conv (elastic or static), in plan order of the largest network."""
        for unit in self.units.values():
            yield unit.conv

    def set_quantization(self, enabled: bool) -> None:
        """Turn every fake quantizer on (QAT) or off (float training)."""
        for module in self.modules():
            if isinstance(module, (PACTActivationQuant, PerChannelWeightQuant)):
                module.enabled = enabled


def _aux_head(channels: int, num_classes: int) -> nn.Module:
    """A float auxiliary classifier for deep supervision (training only, never frozen)."""
    return nn.Sequential(
        nn.Conv2d(channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, num_classes, 1),
    )


class Supernet(SegNet):
    """Elastic units for every conv of the largest network; ``set_genome`` selects the active subnet."""

    def __init__(self, spec: SpaceSpec, units: Mapping[str, ConvUnit], aux_heads: Sequence[nn.Module]) -> None:
        space = SearchSpace(spec)
        super().__init__(spec, space.largest(), units)
        self.space = space
        self.aux_heads = nn.ModuleList(aux_heads)
        self.set_genome(self.genome)

    def set_genome(self, genome: Mapping[str, int]) -> None:
        """Make ``genome`` the active subnet (validated against the space): its plan decides every
        conv's geometry at each forward; its bit widths are set here."""
        genome = self.space.validate(genome)
        for op in network_plan(self.spec, genome, *NOMINAL_HW).convs():
            self.units[op.label].conv.set_bits(op.wbits, op.abits)
        self.genome = genome

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Main logits and the auxiliary heads' logits (on the plan's ``aux`` taps), all at input size."""
        taps = self.plan(x.shape[-2], x.shape[-1]).taps.get("aux", ())
        logits, values = self.run(x, taps)
        aux = [resize(head(values[label]), x.shape[-2:], self.spec.upsample)
               for head, label in zip(self.aux_heads, taps)]
        return logits, aux


def elastic_units(spec: SpaceSpec, quant: QuantSettings) -> tuple[dict[str, ConvUnit], list[nn.Module]]:
    """One elastic unit per conv of the largest network (in plan order) and an auxiliary head per ``aux`` tap."""
    plan = network_plan(spec, SearchSpace(spec).largest(), *NOMINAL_HW)
    units = {}
    for op in plan.convs():
        conv = ElasticQConv2d(op.cin, op.cout, kernel_sizes=op.kernel_choices, depthwise=op.depthwise,
                              wbits=op.wbits_choices, abits=op.abits_choices, signed_input=op.signed_input,
                              bias=op.bias, act_init_clip=quant.act_init_clip,
                              learn_weight_clip=quant.learn_weight_clip, label=op.label)
        if op.fixed_clip is not None:
            conv.act_quant.alpha.data.fill_(op.fixed_clip)
            conv.act_quant.alpha.requires_grad_(False)
        bn = ElasticBatchNorm2d(op.cout) if op.batchnorm else None
        out = PACTActivationQuant((OUTPUT_QUANT_BITS,), signed=not op.relu, init_alpha=quant.act_init_clip) \
            if op.out_quant else None
        units[op.label] = ConvUnit(conv, bn, out)
    aux = [_aux_head(plan.op(label).channels, spec.num_classes) for label in plan.taps.get("aux", ())]
    return units, aux


MODULE_BUILDERS: dict[str, Callable[[SpaceSpec, QuantSettings], Supernet]] = {}


def register_modules(name: str) -> Callable:
    """Register ``builder(spec, quant) -> Supernet`` for network family ``name``, for a family whose
    plan needs modules that ``elastic_units`` cannot build."""

    def decorate(builder: Callable[[SpaceSpec, QuantSettings], Supernet]) -> Callable:
        if name in MODULE_BUILDERS:
            raise ValueError(f"modules of network {name!r} are already registered")
        MODULE_BUILDERS[name] = builder
        return builder

    return decorate


def build_supernet(spec: SpaceSpec, quant: QuantSettings | None = None) -> Supernet:
    """The supernet of ``spec``'s network family."""
    quant = quant or QuantSettings()
    if spec.network in MODULE_BUILDERS:
        return MODULE_BUILDERS[spec.network](spec, quant)
    units, aux = elastic_units(spec, quant)
    return Supernet(spec, units, aux)


def upgrade_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A supernet state dict of qnas 0.1 (modules stem / stages / highres / head / classifier) under
    today's names (``layers`` nested by conv label); other state dicts are returned as they are."""
    if not any(k.startswith(("stages.", "highres.", "classifier.")) for k in state):
        return dict(state)
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "stages":  # stages.{s-1}.blocks.{b}.{conv}.rest -> layers.s{s}.b{b}.{conv}.rest
            parts = ["layers", f"s{int(parts[1]) + 1}", f"b{parts[3]}", *parts[4:]]
        elif parts[0] == "highres":
            parts = ["layers", "hr", *parts[1:]]
        elif parts[0] == "classifier":
            parts = ["layers", "classifier", "conv", *parts[1:]]
        elif parts[0] in ("stem", "head"):
            parts = ["layers", *parts]
        out[".".join(parts)] = value
    return out
