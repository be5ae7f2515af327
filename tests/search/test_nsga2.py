"""NSGA-II: non-dominated sorting, crowding, and a search whose survivors spread along the front."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qnas.cost import genome_cost
from qnas.search import Constraint, Search, SearchSettings
from qnas.search.nsga2 import crowding_distance, non_dominated_fronts
from qnas.space import SearchSpace
from tests.search.test_search import SMALL, FakeEvaluator


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def test_fronts_agree_with_the_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        values = rng.integers(0, 6, size=(int(rng.integers(2, 25)), int(rng.integers(2, 4)))).astype(float)
        fronts = non_dominated_fronts(values)
        assert sorted(i for f in fronts for i in f) == list(range(len(values)))
        rank = {i: r for r, f in enumerate(fronts) for i in f}
        for i in range(len(values)):
            dominators = [j for j in range(len(values)) if _dominates(values[j], values[i])]
            assert (rank[i] == 0) == (not dominators)
            assert all(rank[j] < rank[i] for j in dominators)
            if rank[i] > 0:  # something in the previous front dominates it
                assert any(_dominates(values[j], values[i]) for j in fronts[rank[i] - 1])


def test_crowding_distance_favours_the_extremes_and_the_sparse() -> None:
    values = np.array([[0.0, 10.0], [1.0, 9.0], [1.5, 8.5], [5.0, 5.0], [10.0, 0.0]])
    d = crowding_distance(values)
    assert np.isinf(d[0]) and np.isinf(d[4]) and d[3] > d[1] > 0


class _TwoObjective(FakeEvaluator):
    """Fitness that grows with bits, with the cost the search reads."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def __call__(self, genome):
        metrics = super().__call__(genome)
        metrics["bitops"] = float(genome_cost(self.space.spec, genome, 64, 64).bitops)
        return metrics


def test_nsga2_keeps_a_spread_front_where_evolution_keeps_the_top(small_space: SearchSpace, tmp_path: Path) -> None:
    w8 = genome_cost(small_space.spec, small_space.uniform(8, 3, 6, 3), 64, 64).bitops
    budget = Constraint("bitops", lambda g: genome_cost(small_space.spec, g, 64, 64).bitops, 0.6 * w8)
    spans = {}
    for strategy in ("nsga2", "evolution"):
        search = Search(small_space, [budget], _TwoObjective(small_space), SearchSettings(**SMALL, strategy=strategy),
                        tmp_path / strategy)
        search.run()
        state_parents = [search.cache[small_space.validate(g)] for g in
                         __import__("json").loads((tmp_path / strategy / "state.json").read_text())["parents"]]
        costs = [c.metrics["bitops"] for c in state_parents]
        spans[strategy] = (max(costs) - min(costs)) / w8
    assert spans["nsga2"] > spans["evolution"]


class _WithTimings(_TwoObjective):
    """The same fitness and BitOps, plus a latency drawn afresh on every call (a measured table's noise)."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        super().__init__(space)
        self.rng = np.random.default_rng(seed)

    def __call__(self, genome):
        return {**super().__call__(genome), "latency_ms": float(self.rng.uniform(1, 2))}


def test_a_recorded_cost_without_a_budget_does_not_steer_the_search(small_space: SearchSpace, tmp_path: Path) -> None:
    """Only budgeted costs are objectives: two runs whose latencies differ (two tables measured by two
    runs) evaluate the same genomes, so a run resumed elsewhere or rerun picks the same policies."""
    w8 = genome_cost(small_space.spec, small_space.uniform(8, 3, 6, 3), 64, 64).bitops
    budget = Constraint("bitops", lambda g: genome_cost(small_space.spec, g, 64, 64).bitops, 0.6 * w8)
    runs = []
    for seed in (0, 1):
        search = Search(small_space, [budget], _WithTimings(small_space, seed), SearchSettings(**SMALL, strategy="nsga2"),
                        tmp_path / str(seed))
        runs.append([c.genome for c in search.run()])
    assert runs[0] == runs[1]


def test_the_objectives_are_bitops_and_each_budget(small_space: SearchSpace) -> None:
    from qnas.search.nsga2 import NSGA2
    from qnas.search.strategy import Candidate

    g = small_space.smallest()
    pool = [Candidate(g, {"miou": 0.5, "bitops": 7.0, "latency_ms": 3.0}, 0)]
    bitops = Constraint("bitops", lambda genome: 7.0, 10.0)
    latency = Constraint("latency_ms", lambda genome: 2.5, 10.0)
    settings = SearchSettings(**SMALL, strategy="nsga2")
    costs = {names: [cost(pool[0]) for cost in NSGA2(small_space, [c for c in (bitops, latency) if c.name in names],
                                                      settings).costs(pool)]
             for names in ((), ("bitops",), ("latency_ms",), ("bitops", "latency_ms"))}
    assert costs == {(): [7.0], ("bitops",): [7.0], ("latency_ms",): [7.0, 2.5], ("bitops", "latency_ms"): [7.0, 2.5]}
