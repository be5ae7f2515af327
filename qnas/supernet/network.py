"""The segmentation network (METHOD.md §2) and its weight-sharing supernet."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.quant import PACTActivationQuant, PerChannelWeightQuant
from qnas.space import Genome, SearchSpace, SpaceSpec, fusion_channels
from qnas.supernet.blocks import ConvBNAct, ElasticStage, MBConv, SeparableConv
from qnas.supernet.ops import ElasticBatchNorm2d, ElasticQConv2d, QConv2d

__all__ = ["QuantSettings", "SegNet", "Supernet", "register_network", "build_supernet", "NETWORKS"]


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


class SegNet(nn.Module):
    """Stem, stages, high-resolution branch, fusion at 1/8, head, classifier, upsampling to input size.

    The same class holds a supernet's elastic parts and a frozen subnet's static ones.
    """

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], highres: nn.Module, head: nn.Module,
                 classifier: nn.Module, upsample: str) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.highres = highres
        self.head = head
        self.classifier = classifier
        self.upsample = upsample

    def features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Head output at 1/8 resolution and every stage's output."""
        stem = self.stem(x)
        outs = []
        h = stem
        for stage in self.stages:
            h = stage(h)
            outs.append(h)
        size = stem.shape[-2:]
        fused = torch.cat([resize(o, size, self.upsample) for o in outs] + [self.highres(stem)], dim=1)
        return self.head(fused), outs

    def forward(self, x: Tensor) -> Tensor:
        head, _ = self.features(x)
        return resize(self.classifier(head), x.shape[-2:], self.upsample)

    def quantized_layers(self) -> Iterator[nn.Module]:
        """Every quantized conv (elastic or static), in module order."""
        for module in self.modules():
            if isinstance(module, (ElasticQConv2d, QConv2d)):
                yield module

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
    """A SegNet of elastic layers; ``set_genome`` selects the active subnet in one place."""

    def __init__(self, spec: SpaceSpec, *parts: nn.Module, aux_heads: Sequence[nn.Module]) -> None:
        super().__init__(*parts, upsample=spec.upsample)
        self.spec = spec
        self.space = SearchSpace(spec)
        self.aux_heads = nn.ModuleList(aux_heads)
        self.genome: Genome = self.space.largest()
        self.set_genome(self.genome)

    def layer(self, label: str) -> ElasticQConv2d:
        for module in self.quantized_layers():
            if module.label == label:
                return module
        raise KeyError(label)

    def set_genome(self, genome: Mapping[str, int]) -> None:
        """Make ``genome`` the active subnet (validated against the space)."""
        genome = self.space.validate(genome)
        for conv in self.quantized_layers():
            conv.set_active(wbits=genome.get(f"{conv.label}.wbits"), abits=genome.get(f"{conv.label}.abits"))
        cin = self.spec.stem_channels[-1]
        for s, stage in enumerate(self.stages, start=1):
            stage.active_depth = genome[f"s{s}.depth"]
            for b, block in enumerate(stage.active_blocks()):
                block.pw1.conv.set_active(out_channels=cin * genome[f"s{s}.b{b}.e"])
                block.dw.conv.set_active(kernel=genome[f"s{s}.b{b}.k"])
                cin = self.spec.stage_channels[s - 1]
        self.genome = genome

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Main logits and the auxiliary heads' logits (on the last stages), all at input size."""
        head, outs = self.features(x)
        logits = resize(self.classifier(head), x.shape[-2:], self.upsample)
        aux = [resize(h(o), x.shape[-2:], self.upsample) for h, o in zip(self.aux_heads, outs[-len(self.aux_heads):])]
        return logits, aux


NETWORKS: dict[str, Callable[[SpaceSpec, QuantSettings], Supernet]] = {}


def register_network(name: str) -> Callable:
    """Register a supernet builder ``(spec, quant) -> Supernet`` under ``name``."""

    def decorate(builder: Callable[[SpaceSpec, QuantSettings], Supernet]) -> Callable:
        if name in NETWORKS:
            raise ValueError(f"network {name!r} is already registered")
        NETWORKS[name] = builder
        return builder

    return decorate


def build_supernet(spec: SpaceSpec, quant: QuantSettings | None = None, network: str = "segnas") -> Supernet:
    if network not in NETWORKS:
        raise KeyError(f"unknown network {network!r}; registered: {sorted(NETWORKS)}")
    return NETWORKS[network](spec, quant or QuantSettings())


@register_network("segnas")
def segnas_supernet(spec: SpaceSpec, quant: QuantSettings) -> Supernet:
    """The thesis's redesigned MobileNetV2 with a high-resolution branch, made elastic."""

    def conv(cin: int, cout: int, kernels: Sequence[int], stride: int, depthwise: bool, signed: bool,
             label: str, wbits: Sequence[int] = spec.bits, abits: Sequence[int] = spec.bits,
             bias: bool = False) -> ElasticQConv2d:
        return ElasticQConv2d(cin, cout, kernel_sizes=kernels, stride=stride, depthwise=depthwise,
                              wbits=wbits, abits=abits, signed_input=signed, bias=bias,
                              act_init_clip=quant.act_init_clip, learn_weight_clip=quant.learn_weight_clip,
                              label=label)

    def output_quant(signed: bool) -> PACTActivationQuant:
        return PACTActivationQuant((8,), signed=signed, init_alpha=quant.act_init_clip)

    layers = dict(conv_layer=conv, norm_layer=ElasticBatchNorm2d)
    c1, c2, c3 = spec.stem_channels
    t1, t2, t3 = spec.stem_strides
    stem_conv = ConvBNAct(spec.in_channels, c1, (3,), t1, False, relu=True, signed_input=False, label="stem.conv",
                          conv_layer=partial(conv, abits=(spec.input_bits,)), norm_layer=ElasticBatchNorm2d)
    stem_conv.conv.act_quant.alpha.data.fill_(1.0)  # the input image in [0, 1] is already 8-bit
    stem_conv.conv.act_quant.alpha.requires_grad_(False)
    stem = nn.Sequential()
    stem.add_module("conv", stem_conv)
    stem.add_module("ds1", SeparableConv(c1, c2, t2, signed_input=False, label="stem.ds1", **layers))
    stem.add_module("ds2", SeparableConv(c2, c3, t3, signed_input=False, label="stem.ds2",
                                         output_quant=output_quant, **layers))

    stages, cin = [], c3
    for s, (cout, stride) in enumerate(zip(spec.stage_channels, spec.stage_strides), start=1):
        blocks = []
        for b in range(spec.max_depth):
            signed = not (s == 1 and b == 0)  # only the stem's output is post-ReLU
            blocks.append(MBConv(cin, cout, stride if b == 0 else 1, spec.kernels, max(spec.expands),
                                 signed_input=signed, label=f"s{s}.b{b}", output_quant=output_quant, **layers))
            cin = cout
        stages.append(ElasticStage(blocks))

    highres = SeparableConv(c3, spec.highres_channels, 1, signed_input=False, label="hr", **layers)
    h1, h2 = spec.head_channels
    head = nn.Sequential()
    head.add_module("ds1", SeparableConv(fusion_channels(spec), h1, 1, signed_input=True, label="head.ds1", **layers))
    head.add_module("ds2", SeparableConv(h1, h2, 1, signed_input=False, label="head.ds2", **layers))
    classifier = conv(h2, spec.num_classes, (1,), 1, False, False, "classifier",
                      wbits=(spec.classifier_wbits,), abits=(spec.classifier_abits,), bias=True)
    aux = [_aux_head(c, spec.num_classes) for c in spec.stage_channels[-2:]]
    return Supernet(spec, stem, stages, highres, head, classifier, aux_heads=aux)
