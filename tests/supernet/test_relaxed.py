"""The relaxed supernet: one-hot gene weights compute the supernet's forward for that genome; pruned choices
are not computed and change nothing; gradients reach every kind of gene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qnas.space import SearchSpace
from qnas.supernet import build_supernet
from qnas.supernet.relaxed import RelaxedSupernet, choice_probabilities, gumbel_weights


@pytest.fixture(scope="module")
def supernet(small_space: SearchSpace):
    torch.manual_seed(0)
    net = build_supernet(small_space.spec)
    for module in net.modules():  # BatchNorms away from the identity, so a wrong channel shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return net


def _one_hot(relaxed: RelaxedSupernet, genome) -> dict[str, torch.Tensor]:
    weights = {}
    for label, choices in relaxed.genes.items():
        w = torch.zeros(len(choices))
        w[choices.index(genome[label]) if label in genome else 0] = 1.0  # a gene beyond the depth: any choice
        weights[label] = w
    return weights


def test_one_hot_weights_compute_the_supernet_forward(supernet, small_space: SearchSpace) -> None:
    relaxed = RelaxedSupernet(supernet)
    x = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(3)
    for genome in [small_space.smallest(), small_space.largest(), *(small_space.sample(rng) for _ in range(4))]:
        supernet.train()
        supernet.set_genome(genome)
        with torch.no_grad():
            want = supernet(x)
            got = relaxed(x, _one_hot(relaxed, genome))
        assert torch.allclose(got, want, rtol=0, atol=1e-4), float((got - want).abs().max())


def test_gumbel_weights_at_a_low_temperature_with_one_hot_parameters_are_one_hot(supernet,
                                                                                 small_space: SearchSpace) -> None:
    relaxed = RelaxedSupernet(supernet)
    genome = small_space.sample(np.random.default_rng(5))
    target = _one_hot(relaxed, genome)
    noise = torch.Generator().manual_seed(0)
    weights = {label: gumbel_weights(50.0 * (w - 1.0), [True] * len(w), 1e-3, noise) for label, w in target.items()}
    assert all(torch.equal(weights[k], target[k]) for k in target)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    supernet.set_genome(genome)
    with torch.no_grad():
        assert torch.allclose(relaxed(x, weights), supernet.train()(x), rtol=0, atol=1e-4)


def test_pruned_choices_are_left_out_and_change_nothing(supernet, small_space: SearchSpace) -> None:
    """With the largest kernel, expand ratio and depth and the 8-bit weights of one layer pruned (their weight
    0), the relaxed forward runs smaller convs and skips blocks, and computes what it computed before."""
    relaxed = RelaxedSupernet(supernet)
    generator = torch.Generator().manual_seed(4)
    alive = {label: [True] * len(c) for label, c in relaxed.genes.items()}
    for label, choices in relaxed.genes.items():
        if label.endswith((".k", ".e", ".depth")) or label == "s1.b0.pw1.wbits":
            alive[label] = [c != max(choices) for c in choices]
    theta = {label: torch.randn(len(c), generator=generator) for label, c in relaxed.genes.items()}
    weights = {label: gumbel_weights(t, alive[label], 2.0, None) for label, t in theta.items()}
    assert all(float(w[i]) == 0.0 for label, w in weights.items() for i, a in enumerate(alive[label]) if not a)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = relaxed(x, weights)
        pruned = relaxed(x, weights, alive)
    assert torch.allclose(pruned, full, rtol=0, atol=1e-4)
    calls = []
    hook = torch.nn.functional.conv2d

    def counting(x, w, *args, **kw):
        calls.append(tuple(w.shape))
        return hook(x, w, *args, **kw)

    torch.nn.functional.conv2d = counting
    try:
        with torch.no_grad():
            relaxed(x, weights, alive)
        pruned_calls = list(calls)
        calls.clear()
        with torch.no_grad():
            relaxed(x, weights)
    finally:
        torch.nn.functional.conv2d = hook
    assert len(pruned_calls) < len(calls)  # the blocks only depth 4 keeps are skipped
    assert max(s[-1] for s in pruned_calls) < max(s[-1] for s in calls)  # no 7x7 kernel is run


def test_gradients_reach_every_kind_of_gene(supernet) -> None:
    relaxed = RelaxedSupernet(supernet)
    theta = {label: torch.zeros(len(c), requires_grad=True) for label, c in relaxed.genes.items()}
    noise = torch.Generator().manual_seed(0)
    weights = {label: gumbel_weights(t, [True] * len(t), 5.0, noise) for label, t in theta.items()}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    relaxed(x, weights).square().mean().backward()
    for label in ("s1.depth", "s2.b1.k", "s3.b0.e", "s1.b0.pw1.wbits", "s2.b0.dw.abits", "hr.pw.wbits"):
        assert theta[label].grad is not None and theta[label].grad.abs().sum() > 0, label
    probs = choice_probabilities(torch.tensor([0.0, 1.0, 2.0]), [True, False, True])
    assert float(probs[1]) == 0.0 and float(probs.sum()) == pytest.approx(1.0)
