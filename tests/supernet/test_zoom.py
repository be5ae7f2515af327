"""Zoomed blocks in torch: the plan's strided dilated conv is nearest downsampling followed by the conv; a zoomed
genome freezes bit for bit, counts the analytic cost, and the relaxed supernet mixes plain and zoomed blocks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qnas.cost import genome_cost
from qnas.space import SearchSpace, network_plan
from qnas.supernet import build_supernet, freeze
from qnas.supernet.network import resize
from qnas.supernet.relaxed import RelaxedSupernet, gumbel_weights
from tests.supernet.test_freeze import _counted
from tests.supernet.test_relaxed import _one_hot


@pytest.fixture(scope="module")
def zoom_space(small_space: SearchSpace) -> SearchSpace:
    return SearchSpace(replace(small_space.spec, zoom=(0, 1)))


@pytest.fixture(scope="module")
def zoom_supernet(zoom_space: SearchSpace):
    torch.manual_seed(0)
    net = build_supernet(zoom_space.spec)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():  # BatchNorms away from the identity, so a wrong channel or pixel shows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    return net


def _zoomed_genomes(space: SearchSpace, n: int) -> list:
    rng = np.random.default_rng(7)
    every = {g.label: 1 for g in space.genes() if g.label.endswith(".zoom")}
    return [space.smallest(), space.validate({**space.largest(), **every})] + [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("kernel,stride,size", [(3, 1, (12, 16)), (5, 1, (11, 9)), (3, 2, (12, 16)), (5, 2, (13, 10))])
def test_nearest_downsampling_then_the_conv_is_the_strided_dilated_conv(kernel: int, stride: int,
                                                                       size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(kernel + stride)
    x = torch.randn(2, 6, *size, generator=gen)
    w = torch.randn(6, 1, kernel, kernel, generator=gen)
    down = x[..., ::2, ::2]  # nearest downsampling by 2 keeps every second pixel
    want = F.conv2d(down, w, None, stride, kernel // 2, 1, 6)
    got = F.conv2d(x, w, None, 2 * stride, 2 * (kernel // 2), 2, 6)
    assert torch.allclose(got, want, rtol=0, atol=1e-5)


def test_a_zoomed_block_computes_its_depthwise_conv_on_every_second_pixel_then_upsamples(zoom_supernet,
                                                                                       zoom_space) -> None:
    """The network's zoomed depthwise conv (the integer engine, in evaluation) equals the same unit's plain conv on
    the nearest-downsampled input, upsampled by nearest copying: FasterSeg's zoomed convolution, exactly."""
    net = zoom_supernet.eval()
    for label in ("s1.b0", "s2.b0"):  # stride 1 and stride 2
        plain = zoom_space.largest()
        zoomed = zoom_space.validate({**plain, f"{label}.zoom": 1})
        net.set_genome(zoomed)
        plan, plain_plan = net.plan(32, 48), network_plan(zoom_space.spec, plain, 32, 48)
        op, plain_op = plan.op(f"{label}.dw"), plain_plan.op(f"{label}.dw")
        t = torch.rand(2, op.cin, *op.in_hw, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            got = resize(net.unit(op.label)(t, op), plan.op(f"{label}.up").hw, "nearest")
            want = F.interpolate(net.unit(op.label)(t[..., ::2, ::2], plain_op), size=plain_op.hw, mode="nearest")
        assert got.shape == want.shape and torch.equal(got, want)


def test_zoomed_genomes_freeze_bit_for_bit_and_count_their_analytic_cost(zoom_supernet, zoom_space) -> None:
    net = zoom_supernet.eval()
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    for genome in _zoomed_genomes(zoom_space, 6):
        assert any(genome[label] for label in genome if label.endswith(".zoom"))
        net.set_genome(genome)
        with torch.no_grad():
            expected = net(x)
            frozen = freeze(net, genome).eval()
            assert torch.equal(frozen(x), expected)
        cost = genome_cost(zoom_space.spec, genome, 32, 48)
        assert _counted(frozen, torch.zeros(1, 3, 32, 48)) == (cost.macs, cost.bitops, cost.params)


def test_relaxed_supernet_computes_a_zoomed_genome_and_mixes_both(zoom_supernet, zoom_space) -> None:
    relaxed = RelaxedSupernet(zoom_supernet)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    for genome in _zoomed_genomes(zoom_space, 3):
        zoom_supernet.train()
        zoom_supernet.set_genome(genome)
        with torch.no_grad():
            want = zoom_supernet(x)
            got = relaxed(x, _one_hot(relaxed, genome))
        assert torch.allclose(got, want, rtol=0, atol=1e-4), float((got - want).abs().max())
    # a zoom gene at one half each: its block's output is between the two, and the gene gets a gradient
    theta = {label: torch.zeros(len(c), requires_grad=True) for label, c in relaxed.genes.items()}
    weights = {label: gumbel_weights(t, [True] * len(t), 1.0, None) for label, t in theta.items()}
    relaxed(x, weights).square().mean().backward()
    assert theta["s1.b0.zoom"].grad is not None and theta["s1.b0.zoom"].grad.abs().sum() > 0
    # both values live: the block runs its depthwise conv twice (plain and zoomed); the plain one pruned: once
    alive = {label: [True] * len(c) for label, c in relaxed.genes.items()}
    pruned = {**alive, "s1.b0.zoom": [False, True]}
    calls: list[int] = []
    hook = torch.nn.functional.conv2d

    def recording(inp, w, bias=None, stride=1, *args, **kw):
        calls.append(stride)
        return hook(inp, w, bias, stride, *args, **kw)

    torch.nn.functional.conv2d = recording
    try:
        counts = []
        for live in (alive, pruned):
            calls.clear()
            with torch.no_grad():
                relaxed(x, {k: w.detach() for k, w in weights.items()}, live)
            counts.append(len(calls))
    finally:
        torch.nn.functional.conv2d = hook
    assert counts[1] == counts[0] - 1
