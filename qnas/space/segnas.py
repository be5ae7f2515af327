"""The SegNAS network (METHOD.md §2-3) as a plan: the thesis's redesigned MobileNetV2 with a
high-resolution branch, every conv quantized, kernel / expand / depth and bit widths searchable.

Layout: a learning-to-downsample stem (conv3x3, two depthwise-separable convs), MBConv stages,
a depthwise-separable high-resolution branch on the stem output, a fusion of every stage output
(resized to the stem's resolution) and the branch, a head of two depthwise-separable convs, a 1x1
classifier, and a resize to the input size. The network input and the classifier have the
config's fixed bit widths; every other conv has a weight and an input-activation bit-width gene.
A stage output and the stem output carry 8-bit output quantizers (a residual operand or a tensor
several convs read: an integer engine keeps them as numbers).
"""

from __future__ import annotations

from qnas.space.networks import register_network
from qnas.space.plan import PlanBuilder, conv_out_size
from qnas.space.spec import SpaceSpec

__all__ = ["segnas"]


def _qconv(b: PlanBuilder, spec: SpaceSpec, label: str, x: str, cout: int, kernel: int, stride: int = 1,
           **kw) -> str:
    """A conv whose weight and input bit widths are genes (unless ``kw`` fixes them)."""
    if "wbits" not in kw:
        kw.update(wbits=b.bits(f"{label}.wbits", spec.bits), wbits_choices=spec.bits)
    if "abits" not in kw:
        kw.update(abits=b.bits(f"{label}.abits", spec.bits), abits_choices=spec.bits)
    return b.conv(label, x, cout, kernel, stride, **kw)


def _separable(b: PlanBuilder, spec: SpaceSpec, label: str, x: str, cout: int, stride: int, signed_input: bool,
               out_quant: bool = False) -> str:
    h = _qconv(b, spec, f"{label}.dw", x, 0, 3, stride, depthwise=True, signed_input=signed_input)
    return _qconv(b, spec, f"{label}.pw", h, cout, 1, out_quant=out_quant)


def _zoom(b: PlanBuilder, spec: SpaceSpec, label: str) -> int:
    """Whether the block's depthwise conv is zoomed: a gene when ``spec.zoom`` offers both (default 0,
    the plain block every genome without the gene described), else the one value it allows."""
    if len(spec.zoom) == 1:
        return spec.zoom[0]
    return b.choice(f"{label}.zoom", spec.zoom, default=0, descending=True)


def _mbconv(b: PlanBuilder, spec: SpaceSpec, label: str, x: str, cout: int, stride: int, signed_input: bool) -> str:
    """Mobile inverted bottleneck: expand 1x1, depthwise k x k, linear projection 1x1 onto an 8-bit
    output grid, residual when the shapes allow.

    Zoomed (FasterSeg's zoomed convolution, METHOD.md §8): the depthwise conv runs at half resolution
    between a nearest downsampling by 2 and a nearest upsampling back. Nearest downsampling by 2 followed
    by a k x k conv (stride s, padding k // 2) is the k x k conv of stride 2s, dilation 2 and padding
    2 (k // 2) on the full-resolution input, so the plan writes that conv and a nearest ``Resize``; both
    copy or sum integer codes, so the block stays exact in every integer export.
    """
    cin = b.channels(x)
    with b.unit(label, "mbconv", b.hw(x), cin, cout) as shape:
        kernel = b.choice(f"{label}.k", spec.kernels)
        expand = b.choice(f"{label}.e", spec.expands)
        zoom = _zoom(b, spec, label)
        shape.params = (("s", stride), ("k", kernel), ("e", expand)) + ((("z", 1),) if zoom else ())
        h = _qconv(b, spec, f"{label}.pw1", x, cin * expand, 1, signed_input=signed_input)
        if zoom:
            out_hw = tuple(conv_out_size(v, kernel, stride) for v in b.hw(h))
            h = _qconv(b, spec, f"{label}.dw", h, 0, kernel, 2 * stride, depthwise=True, dilation=2,
                       kernel_choices=spec.kernels)
            h = b.resize(f"{label}.up", h, out_hw, "nearest")
        else:
            h = _qconv(b, spec, f"{label}.dw", h, 0, kernel, stride, depthwise=True, kernel_choices=spec.kernels)
        out = _qconv(b, spec, f"{label}.pw2", h, cout, 1, relu=False, out_quant=True)
        if stride == 1 and cin == cout:
            out = b.add(f"{label}.add", out, x)
    return out


def _branches(b: PlanBuilder, spec: SpaceSpec) -> int:
    """Which stage outputs feed the head (bit s-1: stage s): a gene when ``spec.branches`` offers several masks
    (default: all, today's head), else all of them (the supernet's head, which any offer must include)."""
    if len(spec.branches) > 1:
        return b.choice("head.branches", spec.branches, default=spec.all_branches)
    return spec.all_branches


def _fused_index(spec: SpaceSpec, stages: list[int]) -> tuple[int, ...]:
    """The channels of the full fusion (every stage, then the high-resolution branch) that a fusion of
    ``stages`` holds, in order; empty when it holds them all (a prefix needs no index)."""
    if len(stages) == spec.num_stages:
        return ()
    starts = [sum(spec.stage_channels[:i]) for i in range(spec.num_stages + 1)]
    index = [c for s in stages for c in range(starts[s - 1], starts[s])]
    return tuple(index + list(range(starts[-1], starts[-1] + spec.highres_channels)))


@register_network("segnas")
def segnas(spec: SpaceSpec, b: PlanBuilder) -> None:
    """The thesis's redesigned MobileNetV2 with a high-resolution branch (SegNAS / SegQNAS)."""
    c1, c2, c3 = spec.stem_channels
    t1, t2, t3 = spec.stem_strides
    with b.unit("stem", "stem", (b.height, b.width), spec.in_channels, c3):
        image = b.input("image", spec.in_channels)
        h = _qconv(b, spec, "stem.conv", image, c1, 3, t1, abits=spec.input_bits, fixed_clip=1.0)
        h = _separable(b, spec, "stem.ds1", h, c2, t2, signed_input=False)
        stem = _separable(b, spec, "stem.ds2", h, c3, t3, signed_input=False, out_quant=True)

    h, stage_outs = stem, []
    for s, (cout, stride) in enumerate(zip(spec.stage_channels, spec.stage_strides), start=1):
        depth = b.depth(f"s{s}.depth", spec.depths)
        for i in range(depth):
            # only the stem output is post-ReLU; every later block reads a residual sum or a projection
            h = _mbconv(b, spec, f"s{s}.b{i}", h, cout, stride if i == 0 else 1, signed_input=(s, i) != (1, 0))
        stage_outs.append(h)
    b.tap("aux", stage_outs[-2:])

    stem_hw = b.hw(stem)
    with b.unit("hr", "highres", stem_hw, c3, spec.highres_channels):
        highres = _separable(b, spec, "hr", stem, spec.highres_channels, 1, signed_input=False)

    fused_channels = sum(spec.stage_channels) + spec.highres_channels
    with b.unit("head", "head", stem_hw, fused_channels, spec.num_classes) as shape:
        mask = _branches(b, spec)
        stages = [s for s in range(1, spec.num_stages + 1) if mask >> (s - 1) & 1]
        branches = [b.resize(f"fuse.s{s}", stage_outs[s - 1], stem_hw, spec.upsample) for s in stages]
        fused = b.concat("fuse", [*branches, highres])
        index = _fused_index(spec, stages)
        shape.cin = b.channels(fused)
        shape.params = (("b", mask),) if mask != spec.all_branches else ()
        h1, h2 = spec.head_channels
        h = _qconv(b, spec, "head.ds1.dw", fused, 0, 3, 1, depthwise=True, signed_input=True, channel_index=index)
        h = _qconv(b, spec, "head.ds1.pw", h, h1, 1, channel_index=index)
        h = _separable(b, spec, "head.ds2", h, h2, 1, signed_input=False)
        logits = _qconv(b, spec, "classifier", h, spec.num_classes, 1, wbits=spec.classifier_wbits,
                        abits=spec.classifier_abits, relu=False, bias=True, batchnorm=False)
        b.output("logits", b.resize("logits.resize", logits, (b.height, b.width), spec.upsample))
