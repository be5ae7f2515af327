"""Registered search strategies: what each generation proposes and which candidates survive.

A strategy is a class registered with ``@register_strategy(name)``; the search driver
(``qnas.search.driver.Search``) owns evaluation, caching, logging and resumable state, and asks
the strategy two things per generation: ``propose`` (the candidates to evaluate, every one meeting
every constraint, drawn from the generator it is given) and ``survivors`` (the parents of the next
generation). Strategies are torch-free and hold no state between generations beyond ``parents``,
so a resumed search regenerates exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qnas.search.constraints import Constraint
from qnas.space.genome import Genome, SearchSpace

__all__ = ["FITNESS", "Candidate", "Strategy", "STRATEGIES", "register_strategy", "generation_strategies"]

FITNESS = "miou"


@dataclass(frozen=True)
class Candidate:
    genome: Genome
    metrics: Mapping[str, float]
    generation: int

    @property
    def fitness(self) -> float:
        return float(self.metrics[FITNESS])


class Strategy:
    """The base: keep the best ``settings.parents`` candidates by fitness (parents and children compete)."""

    name = "?"
    relaxed = False  # True: a differentiable strategy, run by qnas.pipeline.gumbel rather than the driver

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], settings: Any) -> None:
        self.space = space
        self.constraints = list(constraints)
        self.settings = settings

    @staticmethod
    def evaluations(settings: Any) -> int:
        """Candidates over the whole search (cache hits included)."""
        raise NotImplementedError

    def propose(self, generation: int, parents: list[Candidate], rng: np.random.Generator) -> list[Genome]:
        raise NotImplementedError

    def survivors(self, pool: list[Candidate]) -> list[Candidate]:
        return sorted(pool, key=lambda c: -c.fitness)[:self.settings.parents]


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    def decorate(cls: type[Strategy]) -> type[Strategy]:
        if name in STRATEGIES:
            raise ValueError(f"search strategy {name!r} is already registered")
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return decorate


def generation_strategies() -> list[str]:
    """The registered strategies the generation driver runs (every one but the differentiable ones)."""
    return sorted(name for name, cls in STRATEGIES.items() if not cls.relaxed)
