"""The search driver: generations of a registered strategy, evaluated, cached, logged, resumable.

Each generation the strategy proposes candidates (each meeting every constraint before it is
evaluated), the evaluator scores the new ones, and the strategy picks the survivors among the
parents and the children. The search never imports torch: it sees an ``Evaluator``, and a
``Mapper`` that runs it over a generation's new genomes (one after the other, or spread over the
ranks of a process group: every rank then runs the same search and gets every result, and only
the ``writer`` writes the files).

Persistence (in ``folder``): ``evaluations.jsonl`` gets one line per evaluated genome as soon as
the mapper yields its metrics; ``state.json`` (atomic) holds the parents and the generator state after
every generation. A resumed search regenerates the interrupted generation's candidates from the saved
generator state and finds the finished ones in the log, so it ends exactly where an
uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qnas.config import GumbelConfig, SearchConfig
from qnas.errors import QnasError
from qnas.search.constraints import Constraint, check_achievable, feasible
from qnas.search.strategy import FITNESS, STRATEGIES, Candidate
from qnas.space.genome import Genome, SearchSpace
from qnas.space.policy import atomic_write_text

__all__ = ["Evaluator", "Mapper", "serial_map", "SearchSettings", "Candidate", "SearchMonitor", "Search", "FITNESS",
           "pareto_front"]


class Evaluator(Protocol):
    """Maps a genome to its metrics (at least ``miou``); the search never sees torch."""

    def __call__(self, genome: Genome) -> Mapping[str, float]: ...


class Mapper(Protocol):
    """Evaluates ``genomes`` and yields their metrics in their order, each as soon as it is known (the
    search logs it then). Every process of a distributed search gets every genome's metrics."""

    def __call__(self, evaluator: Evaluator, genomes: Sequence[Genome]) -> Iterator[Mapping[str, float]]: ...


def serial_map(evaluator: Evaluator, genomes: Sequence[Genome]) -> Iterator[Mapping[str, float]]:
    """One genome after the other, in this process."""
    for genome in genomes:
        yield evaluator(genome)


@dataclass(frozen=True)
class SearchSettings(SearchConfig):
    """The config's search numbers (``SearchConfig``), the strategy checked against the registry."""

    def __post_init__(self) -> None:
        if isinstance(self.gumbel, Mapping):  # from asdict(SearchConfig)
            object.__setattr__(self, "gumbel", GumbelConfig(**self.gumbel))
        super().__post_init__()
        if self.strategy not in STRATEGIES:
            raise QnasError(f"search strategy {self.strategy!r} is not allowed; allowed: {sorted(STRATEGIES)}")

    @property
    def evaluations(self) -> int:
        """Candidates over the whole search (cache hits included)."""
        return STRATEGIES[self.strategy].evaluations(self)


class SearchMonitor(Protocol):
    def evaluated(self, candidate: Candidate, done: int, total: int) -> None: ...

    def generation_done(self, generation: int, parents: Sequence[Candidate], best: Candidate) -> None: ...


class _Silent:
    def evaluated(self, candidate: Candidate, done: int, total: int) -> None:
        pass

    def generation_done(self, generation: int, parents: Sequence[Candidate], best: Candidate) -> None:
        pass


@dataclass
class _State:
    generation: int = 0  # the next generation to run
    parents: list[dict[str, int]] = field(default_factory=list)
    rng: dict[str, Any] | None = None
    history: list[list[int]] = field(default_factory=list)  # per finished generation: log line numbers


class Search:
    """One search run in ``folder``; ``run(resume)`` returns every candidate in evaluation order.

    ``mapper`` evaluates each generation's new genomes (default: one after the other); ``writer``:
    whether this process writes the log and the state (in a distributed search, only one does, and
    the others read them when they resume)."""

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], evaluator: Evaluator,
                 settings: SearchSettings, folder: str | os.PathLike[str],
                 monitor: SearchMonitor | None = None, identity: Mapping[str, Any] | None = None, *,
                 mapper: Mapper = serial_map, writer: bool = True) -> None:
        self.space = space
        self.constraints = list(constraints)
        self.evaluator = evaluator
        self.mapper = mapper
        self.writer = writer
        self.settings = settings
        self.folder = Path(folder)
        self.monitor = monitor or _Silent()
        self.log_path = self.folder / "evaluations.jsonl"
        self.state_path = self.folder / "state.json"
        self.cache: dict[Genome, Candidate] = {}
        self.line: dict[Genome, int] = {}  # where each evaluated genome sits in the log
        self.logged: list[Genome] = []
        self.history: list[Candidate] = []  # every candidate, in order (cache hits repeat)
        if STRATEGIES[settings.strategy].relaxed:
            raise QnasError(f"strategy {settings.strategy!r} is differentiable; run it with qnas.pipeline.search")
        self.strategy = STRATEGIES[settings.strategy](space, constraints, settings)
        # what else defines this search (budgets, supernet, config): a resume must match it
        self.identity = json.loads(json.dumps({"budgets": {c.name: c.budget for c in self.constraints},
                                               **(identity or {})}))
        self.warnings: list[str] = []
        self._unsaved: _State | None = None  # the initial state, written with the first log line

    # -- persistence --------------------------------------------------------------------------
    def _load(self) -> _State:
        if self.log_path.exists():
            self._read_log()
        if not self.state_path.exists():
            return _State()
        try:
            doc = json.loads(self.state_path.read_text())
            saved = doc["settings"], doc.get("identity", {})
            state = _State(doc["generation"], doc["parents"], doc["rng"], doc["history"])
        except (ValueError, KeyError, TypeError):
            raise QnasError(f"{self.state_path} is damaged (not a search state); remove {self.folder} to start "
                            "again") from None
        current = json.loads(json.dumps(asdict(self.settings)))  # as JSON holds them
        current.pop("gumbel", None)  # strategy gumbel's settings: not this driver's (and absent from older states)
        for name, (was, now) in {**{k: (saved[0].get(k), v) for k, v in current.items()},
                                 **{k: (saved[1].get(k), v) for k, v in self.identity.items()}}.items():
            if was != now:
                raise QnasError(f"{self.folder} holds a search with {name} {was!r}, this one has {now!r}; resume it "
                                f"with the same {name}, or choose another --out")
        return state

    def _read_log(self) -> None:
        """Every evaluation logged so far; a last line cut by a kill is dropped (and redone), with a warning."""
        data = self.log_path.read_bytes()
        good = 0
        for i, raw in enumerate(data.splitlines(keepends=True)):
            try:
                entry = json.loads(raw)
                genome = self.space.validate(entry["genome"])
                candidate = Candidate(genome, {k: float(v) for k, v in entry["metrics"].items()},
                                      int(entry["generation"]))
                if not raw.endswith(b"\n"):
                    raise ValueError("no line end")
            except (ValueError, KeyError, TypeError, AttributeError, QnasError) as exc:
                if good + len(raw) == len(data):  # the last line, cut by a kill: drop it
                    if self.writer:
                        with open(self.log_path, "r+b") as f:
                            f.truncate(good)
                    self.warnings.append(f"{self.log_path}: dropped its last line, cut off by a kill; that "
                                         "evaluation is done again")
                    break
                reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0][:80]
                raise QnasError(f"{self.log_path}: line {i + 1} is not an evaluation ({reason}); "
                                "the log is damaged") from None
            self.cache[genome] = candidate
            self.line[genome] = len(self.logged)
            self.logged.append(genome)
            good += len(raw)

    def _save(self, state: _State) -> None:
        self._unsaved = None
        if not self.writer:
            return
        doc = {"settings": asdict(self.settings), "identity": self.identity, "generation": state.generation,
               "parents": state.parents, "rng": state.rng, "history": state.history}
        atomic_write_text(self.state_path, json.dumps(doc) + "\n")

    def _append(self, candidate: Candidate) -> None:
        if self._unsaved is not None:  # a log never exists without its state
            self._save(self._unsaved)
        if self.writer:
            line = json.dumps({"genome": dict(candidate.genome), "metrics": dict(candidate.metrics),
                               "generation": candidate.generation})
            with open(self.log_path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.line[candidate.genome] = len(self.logged)
        self.logged.append(candidate.genome)

    # -- the search ---------------------------------------------------------------------------
    def _evaluate(self, genomes: Sequence[Genome], generation: int) -> Iterator[Candidate]:
        """The candidates of ``genomes`` in order; the new ones (each once, in order of first appearance)
        go through the mapper in one call and each is logged as soon as its metrics arrive."""
        new = [g for g in dict.fromkeys(genomes) if g not in self.cache]
        for genome in new:
            if not feasible(genome, self.constraints):  # never evaluate an infeasible genome
                raise AssertionError(f"infeasible candidate reached evaluation: {genome}")
        results = iter(self.mapper(self.evaluator, new))
        for genome in genomes:
            if genome not in self.cache:  # the next of ``new``
                result = next(results, None)
                if result is None:
                    raise QnasError(f"the mapper yielded fewer results than the {len(new)} genomes it was given")
                metrics = {k: float(v) for k, v in result.items()}
                if FITNESS not in metrics:
                    raise QnasError(f"the evaluator returned no {FITNESS!r}: {sorted(metrics)}")
                self.cache[genome] = Candidate(genome, metrics, generation)
                self._append(self.cache[genome])
            candidate = self.cache[genome]
            self.history.append(candidate)
            yield candidate

    def run(self, resume: bool = False) -> list[Candidate]:
        s = self.settings
        check_achievable(self.space, self.constraints)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not resume and (self.log_path.exists() or self.state_path.exists()):
            raise QnasError(f"{self.folder} already holds a search; pass --resume to continue it, "
                            "or choose another --out")
        state = self._load() if resume else _State()
        rng = np.random.default_rng(s.seed)
        if state.rng is not None:
            rng.bit_generator.state = state.rng
        if not self.state_path.exists():  # saved with the first log line, once every process has read the folder
            self._unsaved = _State(0, [], rng.bit_generator.state, [])
        parents = [self.cache[self.space.validate(g)] for g in state.parents]
        self.history = []
        done = 0
        for generation in range(s.generations):
            if generation < state.generation:  # finished before the interruption: replay from the log
                self.history.extend(self.cache[self.logged[i]] for i in state.history[generation])
                done += len(state.history[generation])
                continue
            genomes = self.strategy.propose(generation, parents, rng)
            children = []
            for candidate in self._evaluate(genomes, generation):
                children.append(candidate)
                done += 1
                self.monitor.evaluated(candidate, done, s.evaluations)
            pool = {c.genome: c for c in parents + children}  # parents compete with their children
            parents = self.strategy.survivors(list(pool.values()))
            best = max(self.cache.values(), key=lambda c: c.fitness)
            state.history = state.history[:generation] + [[self.line[c.genome] for c in children]]
            self._save(_State(generation + 1, [dict(c.genome) for c in parents], rng.bit_generator.state,
                              state.history))
            self.monitor.generation_done(generation, parents, best)
        return self.history

    def best(self) -> Candidate:
        if not self.cache:
            raise QnasError("the search has evaluated nothing yet")
        return max(self.cache.values(), key=lambda c: c.fitness)


def pareto_front(candidates: Sequence[Candidate], cost: Callable[[Candidate], float]) -> list[Candidate]:
    """Candidates no other beats on both fitness (higher) and ``cost`` (lower), sorted by cost."""
    unique = {c.genome: c for c in candidates}.values()
    ordered = sorted(unique, key=lambda c: (cost(c), -c.fitness))
    front, best = [], -np.inf
    for c in ordered:
        if c.fitness > best:
            front.append(c)
            best = c.fitness
    return front
