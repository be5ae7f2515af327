"""The head's branches in torch: a genome reading a subset of the stage outputs freezes bit for bit (weights,
BatchNorm and learned weight clips of the chosen channels), counts the analytic cost, trains only the chosen
channels' statistics, and the relaxed supernet computes it with one-hot weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from qnas.cost import genome_cost
from qnas.space import SearchSpace
from qnas.supernet import build_supernet, freeze
from qnas.supernet.network import QuantSettings
from qnas.supernet.relaxed import RelaxedSupernet, gumbel_weights
from tests.supernet.test_freeze import _counted
from tests.supernet.test_relaxed import _one_hot


@pytest.fixture(scope="module")
def branch_space(small_space: SearchSpace) -> SearchSpace:
    return SearchSpace(replace(small_space.spec, branches=(4, 5, 6, 7), zoom=(0, 1)))


@pytest.fixture(scope="module")
def branch_supernet(branch_space: SearchSpace):
    torch.manual_seed(0)
    net = build_supernet(branch_space.spec, QuantSettings(learn_weight_clip=True))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():  # statistics, affine parameters and clips that differ per channel
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
            if getattr(m, "clip_ratio", None) is not None:
                m.clip_ratio.uniform_(0.5, 1.0, generator=gen)
    return net


def _genomes(space: SearchSpace) -> list:
    rng = np.random.default_rng(8)
    return [space.validate({**space.sample(rng), "head.branches": mask}) for mask in (4, 5, 6, 7, 5)]


def test_branch_subsets_freeze_bit_for_bit_and_count_their_analytic_cost(branch_supernet, branch_space) -> None:
    net = branch_supernet.eval()
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    outputs = set()
    for genome in _genomes(branch_space):
        net.set_genome(genome)
        with torch.no_grad():
            expected = net(x)
            frozen = freeze(net, genome).eval()
            assert torch.equal(frozen(x), expected)
        outputs.add(float(expected.sum()))
        cost = genome_cost(branch_space.spec, genome, 32, 48)
        assert _counted(frozen, torch.zeros(1, 3, 32, 48)) == (cost.macs, cost.bitops, cost.params)
        index = net.plan(32, 48).op("head.ds1.dw").channel_index
        if index:  # the frozen head holds the chosen channels' weights, BatchNorm and learned clips
            rows = list(index)
            dw, big = frozen.unit("head.ds1.dw"), net.unit("head.ds1.dw")
            assert torch.equal(dw.conv.weight, big.conv.weight[rows])
            assert torch.equal(dw.bn.running_mean, big.bn.running_mean[rows])
            assert torch.equal(dw.bn.weight, big.bn.weight[rows])
            bits = big.conv.weight_quant._index
            assert torch.equal(dw.conv.weight_quant.clip_ratio[0], big.conv.weight_quant.clip_ratio[bits, rows])
            assert torch.equal(frozen.layer("head.ds1.pw").weight, net.layer("head.ds1.pw").weight[:, rows])
    assert len(outputs) == 5


def test_training_a_subset_updates_only_its_channels_statistics(branch_supernet, branch_space) -> None:
    net = branch_supernet.train()
    genome = branch_space.validate({**branch_space.largest(), "head.branches": 5})
    net.set_genome(genome)
    bn = net.unit("head.ds1.dw").bn
    before = bn.running_mean.clone()
    with torch.no_grad():
        net(torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(4)))
    changed = set(torch.nonzero(bn.running_mean != before).flatten().tolist())
    assert changed == set(net.plan(32, 48).op("head.ds1.dw").channel_index)
    net.eval()


def test_relaxed_supernet_computes_each_branch_subset_and_learns_the_gene(branch_supernet, branch_space) -> None:
    relaxed = RelaxedSupernet(branch_supernet)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    for genome in _genomes(branch_space):
        branch_supernet.train()
        branch_supernet.set_genome(genome)
        with torch.no_grad():
            want = branch_supernet(x)
            got = relaxed(x, _one_hot(relaxed, genome))
        assert torch.allclose(got, want, rtol=0, atol=1e-4), (genome["head.branches"], float((got - want).abs().max()))
    theta = {label: torch.zeros(len(c), requires_grad=True) for label, c in relaxed.genes.items()}
    weights = {label: gumbel_weights(t, [True] * len(t), 1.0, None) for label, t in theta.items()}
    relaxed(x, weights).square().mean().backward()
    assert theta["head.branches"].grad is not None and theta["head.branches"].grad.abs().sum() > 0
    branch_supernet.eval()
