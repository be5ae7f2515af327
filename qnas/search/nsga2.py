"""Multi-objective search (NSGA-II, Deb et al. 2002): the whole Pareto front in one search.

Objectives: search-validation mIoU (higher) against BitOps and each budgeted cost (lower):
predicted latency is one when the search has a latency budget. A latency the evaluator merely
records (predicted from a table this run measured) is not, so a search without a latency budget
never depends on a timing: two runs of one config pick the same policies. The first generation is
spread along the first budget (see ``NSGA2._spread``); each later generation breeds ``mutants +
crossovers`` children from parents chosen by binary tournament on (front rank, crowding
distance); the next parents are the best ``population`` of parents and children by the same
order. Candidates meet every budget, so the front spans everything up to the budgets. Torch-free and resumable: the
order is computed from the candidates alone, ties broken by their order in the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from qnas.search.constraints import sample_feasible, shrunk
from qnas.search.strategy import Candidate, Strategy, register_strategy
from qnas.space.genome import Genome

__all__ = ["NSGA2", "objectives", "non_dominated_fronts", "crowding_distance"]

Cost = Callable[[Candidate], float]


def objectives(candidates: Sequence[Candidate], costs: Sequence[Cost]) -> np.ndarray:
    """[n, 1 + len(costs)] values to minimize: -mIoU, then each cost."""
    return np.array([[-c.fitness] + [float(cost(c)) for cost in costs] for c in candidates], dtype=np.float64)


def non_dominated_fronts(values: np.ndarray) -> list[list[int]]:
    """Indices by non-dominated front (front 0: nothing dominates them), each in index order."""
    n = len(values)
    better_eq = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    strictly = np.any(values[:, None, :] < values[None, :, :], axis=2)
    dominates = better_eq & strictly  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    fronts, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in np.flatnonzero(dominates[i]):
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(int(j))
        current = sorted(nxt)
    return fronts


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """Deb's crowding distance within one front (infinite at each objective's extremes)."""
    n, k = values.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for m in range(k):
        order = np.argsort(values[:, m], kind="stable")
        span = values[order[-1], m] - values[order[0], m]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[order[2:], m] - values[order[:-2], m]) / span
    return distance


def _ranking(pool: Sequence[Candidate], costs: Sequence[Cost]) -> tuple[np.ndarray, np.ndarray]:
    """(front rank, crowding distance) of every candidate."""
    values = objectives(pool, costs)
    rank, crowd = np.zeros(len(pool), int), np.zeros(len(pool))
    for r, front in enumerate(non_dominated_fronts(values)):
        rank[front] = r
        crowd[front] = crowding_distance(values[front])
    return rank, crowd


@register_strategy("nsga2")
class NSGA2(Strategy):
    @staticmethod
    def evaluations(settings) -> int:
        return settings.population + (settings.generations - 1) * (settings.mutants + settings.crossovers)

    def costs(self, pool: Sequence[Candidate]) -> list[Cost]:
        """The minimized costs: each budget's measure, and BitOps (where the candidates carry it) when no
        budget is on BitOps."""
        costs: list[Cost] = [lambda c, measure=con.measure: measure(c.genome) for con in self.constraints]
        if "bitops" not in {con.name for con in self.constraints} and pool and all("bitops" in c.metrics for c in pool):
            costs.insert(0, lambda c: c.metrics["bitops"])
        return costs

    def survivors(self, pool: list[Candidate]) -> list[Candidate]:
        rank, crowd = _ranking(pool, self.costs(pool))
        order = sorted(range(len(pool)), key=lambda i: (rank[i], -crowd[i], i))
        return [pool[i] for i in order[:self.settings.population]]

    def _tournament(self, parents: list[Candidate], rank: np.ndarray, crowd: np.ndarray,
                    rng: np.random.Generator) -> Genome:
        i, j = (int(v) for v in rng.integers(len(parents), size=2))
        better = i if (rank[i], -crowd[i], i) <= (rank[j], -crowd[j], j) else j
        return parents[better].genome

    def _spread(self, rng: np.random.Generator) -> list[Genome]:
        """The first generation spread along the first budget: candidate i is drawn under a budget i/n of
        the way from the smallest achievable cost to the budget, so the front starts wide, not in the
        middle where uniform draws fall."""
        s, space, cons = self.settings, self.space, self.constraints
        if not cons:
            return [sample_feasible(space, cons, rng, s.max_tries) for _ in range(s.population)]
        first, low = cons[0], cons[0].measure(space.smallest())
        out = []
        for i in range(s.population):
            fraction = (i + 1) / s.population
            target = low + (first.budget - low) * fraction

            def propose(r: np.random.Generator, most: float = 1.0 - fraction) -> Genome:
                # uniform draws, shrunk toward the smallest genome the more the lower the target
                return shrunk(space, space.sample(r), r, float(r.uniform(0.0, most)))

            out.append(sample_feasible(space, [replace(first, budget=target), *cons[1:]], rng, s.max_tries, propose))
        return out

    def propose(self, generation: int, parents: list[Candidate], rng: np.random.Generator) -> list[Genome]:
        s, space, cons = self.settings, self.space, self.constraints
        if generation == 0:
            return self._spread(rng)
        rank, crowd = _ranking(parents, self.costs(parents))

        def pick(r: np.random.Generator) -> Genome:
            return self._tournament(parents, rank, crowd, r)

        mutants = [sample_feasible(space, cons, rng, s.max_tries, propose=lambda r: space.mutate(pick(r), r, s.p_mutate))
                   for _ in range(s.mutants)]
        crosses = [sample_feasible(space, cons, rng, s.max_tries,
                                   propose=lambda r: space.mutate(space.crossover(pick(r), pick(r), r), r, s.p_mutate))
                   for _ in range(s.crossovers)]
        return mutants + crosses
