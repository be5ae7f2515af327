"""Evolutionary search (METHOD.md §6) and its random-search control.

Evolution: the first generation is ``population`` feasible random genomes; every later one breeds
``mutants`` mutants (each gene resampled with probability ``p_mutate``) and ``crossovers`` uniform
crossovers of random parents, where the parents are the best ``parents`` candidates so far.
Random search evaluates as many candidates, ``population`` per generation, all drawn at random.
"""

from __future__ import annotations

import numpy as np

from qnas.search.constraints import sample_feasible
from qnas.search.strategy import Candidate, Strategy, register_strategy
from qnas.space.genome import Genome

__all__ = ["Evolution", "RandomSearch"]


@register_strategy("evolution")
class Evolution(Strategy):
    @staticmethod
    def evaluations(settings) -> int:
        return settings.population + (settings.generations - 1) * (settings.mutants + settings.crossovers)

    def _random(self, rng: np.random.Generator) -> list[Genome]:
        s = self.settings
        return [sample_feasible(self.space, self.constraints, rng, s.max_tries) for _ in range(s.population)]

    def propose(self, generation: int, parents: list[Candidate], rng: np.random.Generator) -> list[Genome]:
        if generation == 0:
            return self._random(rng)
        s, space, cons = self.settings, self.space, self.constraints

        def random_parent(r: np.random.Generator) -> Genome:
            return parents[int(r.integers(len(parents)))].genome

        mutants = [sample_feasible(space, cons, rng, s.max_tries,
                                   propose=lambda r: space.mutate(random_parent(r), r, s.p_mutate))
                   for _ in range(s.mutants)]
        crosses = [sample_feasible(space, cons, rng, s.max_tries,
                                   propose=lambda r: space.crossover(random_parent(r), random_parent(r), r))
                   for _ in range(s.crossovers)]
        return mutants + crosses


@register_strategy("random")
class RandomSearch(Evolution):
    """The control: as many candidates as a generation of evolution's first, every generation at random."""

    @staticmethod
    def evaluations(settings) -> int:
        return settings.population * settings.generations

    def propose(self, generation: int, parents: list[Candidate], rng: np.random.Generator) -> list[Genome]:
        return self._random(rng)
