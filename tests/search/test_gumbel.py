"""Strategy gumbel's torch-free rules: temperature schedule, pruning, cost weights, the final genomes."""

from __future__ import annotations

import numpy as np
import pytest

from qnas.cost import genome_cost
from qnas.search import Constraint, feasible
from qnas.search.gumbel import (argmax_genome, final_candidates, log_probability, prune, sample_genome, temperature,
                                update_targets)
from qnas.space import SearchSpace


def _uniform(space: SearchSpace) -> dict[str, np.ndarray]:
    return {g.label: np.full(len(g.choices), 1.0 / len(g.choices)) for g in space.genes()}


def test_temperature_is_annealed_from_start_to_end() -> None:
    taus = [temperature(s, 11, 5.0, 1.0) for s in range(11)]
    assert taus[0] == 5.0 and taus[-1] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(taus, taus[1:]))


def test_pruning_removes_a_choice_once_below_the_threshold_and_never_the_last() -> None:
    alive = {"a": [True, True, True], "b": [True, False, True]}
    probs = {"a": np.array([0.006, 0.004, 0.99]), "b": np.array([0.001, 0.0, 0.002])}
    out, removed = prune(probs, alive, 0.005)
    assert out["a"] == [True, False, True]  # 0.004 < 0.5%: removed; 0.006 stays
    assert out["b"] == [False, False, True]  # both below: the most probable live one stays
    assert sorted(removed) == [("a", 1), ("b", 0)]
    again, removed = prune({"a": np.array([0.0, 0.0, 1.0]), "b": probs["b"]}, out, 0.005)
    assert again["a"] == [False, False, True] and removed == [("a", 0)]


def test_a_budget_target_drops_while_missed_and_returns_while_met() -> None:
    targets = update_targets({"bitops": 1.0, "latency_ms": 0.8}, {"bitops": True, "latency_ms": False}, 1.1)
    assert targets == {"bitops": pytest.approx(1 / 1.1), "latency_ms": pytest.approx(0.88)}
    assert update_targets({"x": 0.99}, {"x": False}, 1.1)["x"] == 1.0  # never above the budget


def test_argmax_and_samples_are_valid_genomes(small_space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    probs = _uniform(small_space)
    probs["s1.depth"] = np.array([0.0, 0.1, 0.9])  # depths 2, 3, 4
    best = argmax_genome(small_space, probs)
    assert best["s1.depth"] == 4 and small_space.validate(best) == best
    draws = [sample_genome(small_space, probs, rng) for _ in range(30)]
    assert all(small_space.validate(g) == g and g["s1.depth"] != 2 for g in draws)
    assert log_probability(small_space, best, probs) >= max(log_probability(small_space, g, probs) for g in draws)


def test_final_candidates_fall_back_to_the_most_probable_feasible_genome(small_space: SearchSpace) -> None:
    spec = small_space.spec

    def bitops(g) -> float:
        return float(genome_cost(spec, g, 64, 64).bitops)

    largest = small_space.largest()
    probs = {g.label: np.eye(len(g.choices))[-1] * 0.6 + 0.4 / len(g.choices) for g in small_space.genes()}
    assert argmax_genome(small_space, probs) == largest
    budget = Constraint("bitops", bitops, 0.6 * bitops(largest))
    genomes, note = final_candidates(small_space, probs, [budget], np.random.default_rng(1), 3)
    assert note and "misses the bitops budget" in note
    assert all(feasible(g, [budget]) for g in genomes) and len(set(genomes)) == len(genomes) <= 4
    free, none = final_candidates(small_space, probs, [], np.random.default_rng(1), 3)
    assert none is None and free[0] == largest and len(free) == 4
