"""Evolution and random search: budgets hold, impossible budgets fail clearly, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qnas.cost import genome_cost
from qnas.search import (
    STRATEGIES,
    generation_strategies,
    BudgetError,
    Constraint,
    Search,
    SearchSettings,
    pareto_front,
    parse_budget,
    sample_feasible,
)
from qnas.errors import QnasError
from qnas.space import Genome, SearchSpace

SMALL = dict(population=12, parents=6, mutants=6, crossovers=6, generations=4, seed=7)


def _bitops(space: SearchSpace):
    return lambda g: genome_cost(space.spec, g, 64, 64).bitops


class FakeEvaluator:
    """Deterministic, torch-free fitness that prefers more bits and larger blocks (like accuracy)."""

    def __init__(self) -> None:
        self.calls: list[Genome] = []

    def __call__(self, genome: Genome) -> dict[str, float]:
        self.calls.append(genome)
        score = sum(v for k, v in genome.items() if k.endswith("bits")) / (8.0 * len(genome))
        score += 0.01 * sum(genome[k] for k in genome if k.endswith(".e"))
        return {"miou": score / 10.0, "noise": float(hash(tuple(sorted(genome.items()))) % 7)}


def _budget(space: SearchSpace, fraction: float) -> Constraint:
    w8 = genome_cost(space.spec, space.uniform(8, 3, 6, 3), 64, 64).bitops
    return Constraint("bitops", _bitops(space), fraction * w8, "GBitOps", 1e9)


@pytest.mark.parametrize("strategy", generation_strategies())
def test_every_evaluated_genome_meets_the_budget(small_space: SearchSpace, tmp_path: Path, strategy: str) -> None:
    budget = _budget(small_space, 0.4)
    evaluator = FakeEvaluator()
    settings = SearchSettings(strategy=strategy, **SMALL)
    history = Search(small_space, [budget], evaluator, settings, tmp_path).run()
    assert len(history) == settings.evaluations
    assert evaluator.calls and all(budget.satisfied(g) for g in evaluator.calls)
    assert len(set(evaluator.calls)) == len(evaluator.calls)  # cached: each genome evaluated once
    lines = (tmp_path / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == len(evaluator.calls)


def test_random_control_runs_as_many_candidates_as_evolution(small_space: SearchSpace) -> None:
    assert SearchSettings(strategy="random", **SMALL).evaluations == SearchSettings(**SMALL).evaluations == 12 * 4
    thesis = SearchSettings()
    assert thesis.evaluations == SearchSettings(strategy="random").evaluations == 1000


def test_evolution_beats_its_first_generation(small_space: SearchSpace, tmp_path: Path) -> None:
    search = Search(small_space, [_budget(small_space, 0.5)], FakeEvaluator(), SearchSettings(**SMALL), tmp_path)
    history = search.run()
    first = max(c.fitness for c in history if c.generation == 0)
    assert search.best().fitness > first


def test_impossible_budget_states_the_smallest_achievable_cost(small_space: SearchSpace, tmp_path: Path) -> None:
    smallest = genome_cost(small_space.spec, small_space.smallest(), 64, 64).bitops
    budget = Constraint("bitops", _bitops(small_space), 0.5 * smallest, "GBitOps", 1e9)
    with pytest.raises(BudgetError, match=f"smallest achievable bitops is {smallest / 1e9:.4g} GBitOps"):
        Search(small_space, [budget], FakeEvaluator(), SearchSettings(**SMALL), tmp_path).run()


def test_tight_budget_is_met_by_bounded_sampling(small_space: SearchSpace, rng: np.random.Generator) -> None:
    smallest = genome_cost(small_space.spec, small_space.smallest(), 64, 64).bitops
    budget = Constraint("bitops", _bitops(small_space), 1.05 * smallest)
    for _ in range(5):
        assert budget.satisfied(sample_feasible(small_space, [budget], rng, max_tries=400))


class _Killed(Exception):
    pass


class KillAfter(FakeEvaluator):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __call__(self, genome: Genome) -> dict[str, float]:
        if len(self.calls) == self.n:
            raise _Killed
        return super().__call__(genome)


@pytest.mark.parametrize("strategy, kill_at", [(name, k) for name in generation_strategies() for k in (5, 20, 31)])
def test_kill_and_resume_equals_uninterrupted(small_space: SearchSpace, tmp_path: Path, strategy: str,
                                              kill_at: int) -> None:
    budget = _budget(small_space, 0.5)
    settings = SearchSettings(**SMALL, strategy=strategy)
    whole = Search(small_space, [budget], FakeEvaluator(), settings, tmp_path / "whole")
    expected = whole.run()

    killed = KillAfter(kill_at)
    with pytest.raises(_Killed):
        Search(small_space, [budget], killed, settings, tmp_path / "cut").run()
    again = FakeEvaluator()
    resumed = Search(small_space, [budget], again, settings, tmp_path / "cut")
    history = resumed.run(resume=True)
    assert [c.genome for c in history] == [c.genome for c in expected]
    assert resumed.best() == whole.best()
    assert not set(again.calls) & set(killed.calls)  # no completed evaluation is redone
    assert len(killed.calls) + len(again.calls) == len(set(c.genome for c in expected))


def test_a_state_written_before_strategy_gumbel_existed_still_resumes(small_space: SearchSpace, tmp_path: Path) -> None:
    """States of searches made before ``search.gumbel`` was added have no such key in their settings."""
    settings = SearchSettings(**SMALL)
    budget = _budget(small_space, 0.5)
    with pytest.raises(_Killed):
        Search(small_space, [budget], KillAfter(15), settings, tmp_path).run()
    state = tmp_path / "state.json"
    doc = json.loads(state.read_text())
    del doc["settings"]["gumbel"]
    state.write_text(json.dumps(doc))
    resumed = Search(small_space, [budget], FakeEvaluator(), settings, tmp_path)
    whole = Search(small_space, [budget], FakeEvaluator(), settings, tmp_path / "whole")
    assert [c.genome for c in resumed.run(resume=True)] == [c.genome for c in whole.run()]


def test_resume_survives_a_log_line_cut_by_a_kill(small_space: SearchSpace, tmp_path: Path) -> None:
    settings = SearchSettings(**SMALL)
    budget = _budget(small_space, 0.5)
    with pytest.raises(_Killed):
        Search(small_space, [budget], KillAfter(15), settings, tmp_path).run()
    log = tmp_path / "evaluations.jsonl"
    complete = log.read_text()
    log.write_text(complete + '{"genome": {"s1.dep')
    resumed = Search(small_space, [budget], FakeEvaluator(), settings, tmp_path)
    resumed.run(resume=True)
    assert resumed.warnings and "dropped its last line" in resumed.warnings[0]
    lines = log.read_text().splitlines()
    assert log.read_text().startswith(complete) and all(json.loads(line) for line in lines)  # repaired, then appended
    whole = Search(small_space, [budget], FakeEvaluator(), settings, tmp_path / "whole")
    whole.run()
    assert resumed.best() == whole.best()


def test_a_damaged_line_before_the_last_is_refused(small_space: SearchSpace, tmp_path: Path) -> None:
    settings = SearchSettings(**SMALL)
    with pytest.raises(_Killed):
        Search(small_space, [], KillAfter(8), settings, tmp_path).run()
    log = tmp_path / "evaluations.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], '{"metrics": {}}', *lines[2:]]) + "\n")  # a line without a genome
    with pytest.raises(QnasError, match="line 2 is not an evaluation \\(no 'genome'\\)"):
        Search(small_space, [], FakeEvaluator(), settings, tmp_path).run(resume=True)
    log.write_text("\n".join(lines) + "\n")
    (tmp_path / "state.json").write_text('{"settings": {"popul')
    with pytest.raises(QnasError, match="state.json is damaged"):
        Search(small_space, [], FakeEvaluator(), settings, tmp_path).run(resume=True)


def test_resume_refuses_another_budget_naming_both(small_space: SearchSpace, tmp_path: Path) -> None:
    settings = SearchSettings(**SMALL)
    with pytest.raises(_Killed):
        Search(small_space, [_budget(small_space, 0.5)], KillAfter(8), settings, tmp_path).run()
    with pytest.raises(QnasError, match="budgets .*'bitops': .* this one has .*'bitops'"):
        Search(small_space, [_budget(small_space, 0.4)], FakeEvaluator(), settings, tmp_path).run(resume=True)
    with pytest.raises(QnasError, match="supernet 'a', this one has 'b'"):
        Search(small_space, [], FakeEvaluator(), settings, tmp_path / "x", identity={"supernet": "a"}).run()
        Search(small_space, [], FakeEvaluator(), settings, tmp_path / "x", identity={"supernet": "b"}).run(resume=True)


def test_a_log_never_exists_without_its_state(small_space: SearchSpace, tmp_path: Path) -> None:
    with pytest.raises(_Killed):
        Search(small_space, [], KillAfter(1), SearchSettings(**SMALL), tmp_path).run()
    assert (tmp_path / "evaluations.jsonl").exists() and (tmp_path / "state.json").exists()
    Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path).run(resume=True)


def test_fresh_search_refuses_an_existing_folder(small_space: SearchSpace, tmp_path: Path) -> None:
    Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path).run()
    with pytest.raises(Exception, match="--resume"):
        Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path).run()
    other = SearchSettings(**{**SMALL, "seed": 8})
    with pytest.raises(QnasError, match="holds a search with seed 7, this one has 8"):
        Search(small_space, [], FakeEvaluator(), other, tmp_path).run(resume=True)


def test_parse_budget() -> None:
    ref = {"uniform_w8a8": 200.0}.__getitem__
    assert parse_budget("0.5x:uniform_w8a8", "bitops", ref) == 100.0
    assert parse_budget("3", "bitops", ref, scale=1e9) == 3e9
    for bad in ("half", "-1", "0x:uniform_w8a8"):
        with pytest.raises(BudgetError, match="bitops budget"):
            parse_budget(bad, "bitops", ref)


def test_pareto_front(small_space: SearchSpace, tmp_path: Path) -> None:
    history = Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path).run()
    cost = lambda c: genome_cost(small_space.spec, c.genome, 64, 64).bitops  # noqa: E731
    front = pareto_front(history, cost)
    assert front and [cost(f) for f in front] == sorted(cost(f) for f in front)
    assert [f.fitness for f in front] == sorted(f.fitness for f in front)  # costlier only if better
    assert max(c.fitness for c in history) == front[-1].fitness
    for f in front:  # nothing dominates a front member
        assert not any(cost(c) <= cost(f) and c.fitness > f.fitness for c in history)


def test_strategy_registry() -> None:
    from qnas.search import register_strategy
    from qnas.search.evolution import Evolution

    assert {"evolution", "random", "nsga2", "gumbel"} <= set(STRATEGIES)
    assert "gumbel" not in generation_strategies() and "evolution" in generation_strategies()
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("evolution")(Evolution)
    with pytest.raises(Exception, match="allowed: \\['evolution', 'gumbel', 'nsga2', 'random'"):
        SearchSettings(strategy="gradient")


def test_a_budget_only_a_plain_block_meets_is_achievable(small_space: SearchSpace) -> None:
    """A zoomed block computes less but may run slower: the achievability check tries the smallest genome with
    its zoom genes both ways, so a latency budget met only by plain blocks is not refused."""
    from dataclasses import replace

    from qnas.search.constraints import check_achievable, smallest_costs

    space = SearchSpace(replace(small_space.spec, zoom=(0, 1)))

    def slow_zoom(g: Genome) -> float:  # a runtime on which each zoomed block costs 1 ms more
        return float(sum(v for label, v in g.items() if label.endswith(".zoom")))

    constraint = Constraint("latency_ms", slow_zoom, 0.5, "ms")
    assert slow_zoom(space.smallest()) > 0.5
    check_achievable(space, [constraint])  # the smallest genome with plain blocks meets it
    assert smallest_costs(space, [constraint]) == {"latency_ms": 0.0}
    with pytest.raises(QnasError, match="no genome meets"):
        check_achievable(space, [Constraint("latency_ms", slow_zoom, -1.0, "ms")])
