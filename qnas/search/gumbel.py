"""SqueezeNAS's differentiable search (METHOD.md §8): the torch-free rules of strategy ``gumbel``.

The search holds architecture parameters theta per gene; each step samples gene weights from a
Gumbel-softmax at temperature ``temperature(step)`` (annealed geometrically from ``tau_start`` to
``tau_end``), runs the relaxed supernet (``qnas.supernet.relaxed``) and descends

    cross-entropy + sum over costs c of alpha_c * E[c] / scale_c

with ``E[c]`` the expected cost under ``softmax(theta)`` (``qnas.cost.expected``) and, for a budget ``B``, the
penalty ``alpha * relu(E[c] / (target * B) - 1)``: nothing while the expected cost is under its target, so
the cross-entropy pulls the network up to the budget, and a steep slope past it. The target starts at 1 and
is divided by ``budget_step`` each step the most probable genome misses the budget, multiplied by it (up to
1) while it meets it (``update_targets``), so the expected cost settles where the most probable genome
fits. Without a budget ``search.gumbel.cost`` is penalized as SqueezeNAS does, ``alpha * E[c] / scale``.
A choice whose probability falls below ``prune_below`` is removed (``prune``), never a gene's last.

At the end ``final_candidates`` lists the genomes to evaluate: the most probable genome if it meets
every budget, else the most probable of many drawn from the distribution that does (and says so),
plus ``samples`` feasible genomes drawn from the distribution, as SqueezeNAS validates samples of its
final distribution. The torch loop lives in ``qnas.pipeline.gumbel``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from qnas.errors import QnasError
from qnas.search.constraints import Constraint, feasible
from qnas.search.strategy import Candidate, Strategy, register_strategy
from qnas.space.genome import Genome, SearchSpace

__all__ = ["Gumbel", "temperature", "prune", "update_targets", "argmax_genome", "sample_genome",
           "log_probability", "final_candidates", "FALLBACK_DRAWS"]

FALLBACK_DRAWS = 2000  # genomes drawn to find the most probable feasible one when the argmax is not


def temperature(step: int, steps: int, start: float, end: float) -> float:
    """The temperature of ``step`` (0-based) of ``steps``: ``start`` at the first, ``end`` at the last."""
    if steps <= 1:
        return end
    return start * (end / start) ** (step / (steps - 1))


def prune(probs: Mapping[str, np.ndarray], alive: Mapping[str, Sequence[bool]],
          threshold: float) -> tuple[dict[str, list[bool]], list[tuple[str, int]]]:
    """``alive`` with every live choice whose probability is below ``threshold`` removed (a gene keeps its most
    probable choice); returns the new mask and the (gene, choice index) pairs removed."""
    out, removed = {}, []
    for gene, live in alive.items():
        p = np.asarray(probs[gene], dtype=np.float64)
        keep = [bool(a) and bool(p[i] >= threshold) for i, a in enumerate(live)]
        if not any(keep):
            keep = [i == int(np.argmax(np.where(live, p, -1.0))) for i in range(len(live))]
        removed += [(gene, i) for i, (a, k) in enumerate(zip(live, keep)) if a and not k]
        out[gene] = keep
    return out, removed


def update_targets(targets: Mapping[str, float], missed: Mapping[str, bool], step: float) -> dict[str, float]:
    """Each budget's target (a fraction of the budget the expected cost is held under) after a step: divided by
    ``step`` where the most probable genome misses the budget, multiplied by it (up to 1) where it meets it."""
    return {name: t / step if missed[name] else min(1.0, t * step) for name, t in targets.items()}


def _pick(space: SearchSpace, choose) -> Genome:
    """The genome whose depth genes, then the genes that exist at those depths, take ``choose(gene)``."""
    depths = {g.label: choose(g) for g in space.depth_genes()}
    return space.validate({g.label: depths[g.label] if g.kind == "depth" else choose(g) for g in space.genes(depths)})


def argmax_genome(space: SearchSpace, probs: Mapping[str, np.ndarray]) -> Genome:
    """The most probable genome: every gene at its most probable choice (first on ties)."""
    return _pick(space, lambda g: g.choices[int(np.argmax(probs[g.label]))])


def sample_genome(space: SearchSpace, probs: Mapping[str, np.ndarray], rng: np.random.Generator) -> Genome:
    """A genome drawn from the distribution, gene by gene."""
    def draw(g):
        p = np.asarray(probs[g.label], dtype=np.float64)
        return g.choices[int(rng.choice(len(p), p=p / p.sum()))]
    return _pick(space, draw)


def log_probability(space: SearchSpace, genome: Genome, probs: Mapping[str, np.ndarray]) -> float:
    """log P(genome): the sum over its genes (those its depths keep) of log p(choice)."""
    total = 0.0
    for gene in space.genes(space.depths(genome)):
        p = float(probs[gene.label][gene.choices.index(genome[gene.label])])
        total += math.log(p) if p > 0 else -math.inf
    return total


def final_candidates(space: SearchSpace, probs: Mapping[str, np.ndarray], constraints: Sequence[Constraint],
                     rng: np.random.Generator, samples: int) -> tuple[list[Genome], str | None]:
    """The genomes to evaluate at the end (first: the chosen one) and a note when the most probable genome
    misses a budget and the most probable feasible one drawn stands in for it."""
    best = argmax_genome(space, probs)
    note = None
    count = 4 * samples if feasible(best, constraints) else max(4 * samples, FALLBACK_DRAWS)
    draws = [sample_genome(space, probs, rng) for _ in range(count)]
    fitting = [g for g in dict.fromkeys(draws) if feasible(g, constraints)]
    if not feasible(best, constraints):
        missed = [c.name for c in constraints if not c.satisfied(best)]
        if not fitting:
            raise QnasError(f"the most probable genome misses the {', '.join(missed)} budget and none of "
                             f"{len(draws)} genomes drawn from the final distribution meets every budget; loosen the "
                             "budget, or give the search more steps (search.gumbel.steps)")
        best = max(fitting, key=lambda g: log_probability(space, g, probs))
        note = (f"the most probable genome misses the {', '.join(missed)} budget; the most probable of "
                f"{len(draws)} drawn genomes that meets every budget is taken instead")
    extra = [g for g in fitting if g != best][:samples]
    return [best, *extra], note


@register_strategy("gumbel")
class Gumbel(Strategy):
    """Registered so that ``--strategy gumbel`` and ``search.strategy: gumbel`` are allowed; it proposes no
    generations: ``qnas.pipeline.gumbel`` runs it (``relaxed``)."""

    relaxed = True

    @staticmethod
    def evaluations(settings) -> int:
        return 1 + settings.gumbel.samples

    def propose(self, generation: int, parents: list[Candidate], rng: np.random.Generator) -> list[Genome]:
        raise TypeError("strategy gumbel is differentiable: qnas.pipeline.gumbel runs it, not the generation driver")
