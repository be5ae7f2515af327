"""Budgets a candidate must meet before it is evaluated, and sampling that respects them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qnas.errors import QnasError
from qnas.space import Genome, SearchSpace

__all__ = ["Constraint", "BudgetError", "parse_budget", "feasible", "sample_feasible", "smallest_costs", "shrunk"]


class BudgetError(QnasError):
    """A budget is malformed, or no genome of the space can meet it."""


@dataclass(frozen=True)
class Constraint:
    """``measure(genome) <= budget``; ``unit`` and ``scale`` only format messages (e.g. 'GBitOps', 1e9)."""

    name: str
    measure: Callable[[Genome], float]
    budget: float
    unit: str = ""
    scale: float = 1.0

    def satisfied(self, genome: Genome) -> bool:
        return self.measure(genome) <= self.budget

    def show(self, value: float) -> str:
        return f"{value / self.scale:.4g}{' ' + self.unit if self.unit else ''}"


_RELATIVE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*x\s*:\s*([A-Za-z0-9_.\-]+)\s*$")


def parse_budget(text: str, name: str, reference: Callable[[str], float], scale: float = 1.0) -> float:
    """An absolute budget (``'120'``, in units of ``scale``) or one relative to a named policy
    (``'0.5x:uniform_w8a8'``: half of that policy's cost, looked up with ``reference(policy)``)."""
    text = str(text).strip()
    match = _RELATIVE.match(text)
    if match:
        factor = float(match.group(1))
        if not 0 < factor < math.inf:
            raise BudgetError(f"{name} budget {text!r}: the factor must be a finite number > 0")
        return factor * reference(match.group(2))
    try:
        value = float(text)
    except ValueError:
        raise BudgetError(f"{name} budget {text!r} is not a number or FACTORx:POLICY "
                          f"(e.g. 0.5x:uniform_w8a8)") from None
    if not 0 < value * scale < math.inf:
        raise BudgetError(f"{name} budget {text!r} must be a finite number > 0")
    return value * scale


def feasible(genome: Genome, constraints: Sequence[Constraint]) -> bool:
    return all(c.satisfied(genome) for c in constraints)


def _lowest(space: SearchSpace, c: Constraint) -> float:
    """The constraint's value on the smallest genome, or on it with every descending gene (a zoom) at its other
    end if that is lower: a zoomed block computes less, but a runtime may run it slower."""
    smallest = space.smallest()
    flipped = {g.label: g.largest for g in space.genes(space.depths(smallest)) if g.descending}
    low = c.measure(smallest)
    return min(low, c.measure(space.validate({**smallest, **flipped}))) if flipped else low


def smallest_costs(space: SearchSpace, constraints: Sequence[Constraint]) -> dict[str, float]:
    """Each constraint's lowest value (``_lowest``): on the smallest genome (every gene at its smallest choice)."""
    return {c.name: _lowest(space, c) for c in constraints}


def check_achievable(space: SearchSpace, constraints: Sequence[Constraint]) -> None:
    """Fail early, stating the smallest achievable cost, when the smallest genome misses a budget.

    Every cost here grows with every gene (bits, kernel, expand, depth; a zoom may not make a block faster on a
    runtime, so both of its values are tried), so if the smallest genome does not fit, nothing does.
    """
    for c in constraints:
        low = _lowest(space, c)
        if low > c.budget:
            raise BudgetError(f"no genome meets the {c.name} budget {c.show(c.budget)}: the smallest "
                              f"achievable {c.name} is {c.show(low)} (the smallest genome)")


def shrunk(space: SearchSpace, genome: Genome, rng: np.random.Generator, p: float) -> Genome:
    """``genome`` with each gene moved to its smallest choice with probability ``p``.

    Depths only go down, so the blocks that remain active all have their genes already.
    """
    values = dict(genome)
    for gene in space.genes(space.depths(genome)):
        if rng.random() < p:
            values[gene.label] = gene.smallest
    active = space.genes(space.depths(values))
    return space.validate({g.label: values[g.label] for g in active})


def sample_feasible(space: SearchSpace, constraints: Sequence[Constraint], rng: np.random.Generator,
                    max_tries: int = 2000, propose: Callable[[np.random.Generator], Genome] | None = None) -> Genome:
    """A genome that meets every constraint: ``propose`` (default: uniform sampling), retried at most
    ``max_tries`` times; after the first half fails, proposals are shrunk toward the smallest genome
    with a random strength, which finds genomes under budgets uniform sampling almost never meets."""
    check_achievable(space, constraints)
    propose = propose or space.sample
    for attempt in range(max_tries):
        genome = propose(rng)
        if attempt >= max_tries // 2:
            genome = shrunk(space, genome, rng, float(rng.uniform(0.2, 1.0)))
        if feasible(genome, constraints):
            return genome
    lows = {c.name: c.show(v) for c, v in zip(constraints, smallest_costs(space, constraints).values())}
    raise BudgetError(f"no genome meeting every budget found in {max_tries} tries "
                      f"(smallest achievable: {lows}); loosen a budget")


def describe(constraints: Sequence[Constraint]) -> Mapping[str, str]:
    return {c.name: c.show(c.budget) for c in constraints}
