"""Expected costs of a distribution over genomes: what a differentiable search penalizes (no torch).

A differentiable search (SqueezeNAS, METHOD.md §8) holds an independent categorical distribution per
gene and penalizes ``E[cost]``, the cost summed over the network's parts, each weighted by the
probabilities of the choices that shape it (SqueezeNAS eq. 3). Every cost here is a sum over units
(latency) or over convs (MACs, BitOps, weight memory), and each part depends only on the shape genes
asked inside its unit, the depth gene that decides whether the unit exists, and its own bit-width
genes (``qnas.space.networks.unit_choices``), so under independent genes the expectation is exact:

    E[cost] = constant + sum over terms of  P(unit exists) * sum_v p(v) table[v] * E[wbits] * E[abits]

with ``v`` the combinations of the unit's shape genes and ``table[v]`` the part's cost at that shape
(latency: the unit's entry plus the table's unit overhead, the constant its overhead; BitOps: MACs,
times the bit widths' expectations; memory: per-channel parameters times E[wbits] plus the fixed scale
and bias bits). With one-hot probabilities it is the genome's cost itself (tested
against ``genome_cost``, ``weight_memory_bytes`` and ``LatencyTable.predict``).

``ExpectedCost.value(probs)`` works on numpy arrays and, after ``map_arrays(torch.as_tensor)``, on torch
tensors (the probabilities a relaxed supernet's architecture parameters give), so gradients flow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from qnas.cost.latency import LatencyTable, LatencyTableError
from qnas.space.networks import unit_choices
from qnas.space.plan import Conv
from qnas.space.spec import SpaceSpec

__all__ = ["CostTerm", "ExpectedCost", "expected_cost", "one_hot", "COST_KINDS"]

COST_KINDS = ("bitops", "macs", "memory", "latency")


@dataclass(frozen=True)
class CostTerm:
    """``presence * sum(outer(p[g] for g in genes) * table) * prod(p[f] . values for f, values in factors)``.

    ``table`` has one axis per gene of ``genes`` (a 0-dim array for a part no shape gene changes);
    ``presence``: (depth gene, 0/1 per choice) or None; ``factors``: (bit-width gene, its choices as values).
    """

    genes: tuple[str, ...]
    table: Any
    presence: tuple[str, Any] | None = None
    factors: tuple[tuple[str, Any], ...] = ()

    def value(self, probs: Mapping[str, Any]) -> Any:
        joint = self.table
        for axis, gene in enumerate(self.genes):
            shape = [1] * len(self.genes)
            shape[axis] = -1
            joint = joint * probs[gene].reshape(shape)
        total = joint.sum()
        if self.presence is not None:
            total = total * (probs[self.presence[0]] * self.presence[1]).sum()
        for gene, values in self.factors:
            total = total * (probs[gene] * values).sum()
        return total


@dataclass(frozen=True)
class ExpectedCost:
    """A cost's expectation as ``constant + sum of terms``; ``name`` is the cost kind, ``choices`` each gene's."""

    name: str
    terms: tuple[CostTerm, ...]
    constant: float = 0.0
    choices: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def value(self, probs: Mapping[str, Any]) -> Any:
        """The expected cost under ``probs`` (gene label -> probability per choice, arrays or tensors)."""
        total = self.constant
        for term in self.terms:
            total = total + term.value(probs)
        return total

    def map_arrays(self, convert: Callable[[np.ndarray], Any]) -> ExpectedCost:
        """The same cost with every table and vector converted (e.g. to torch tensors)."""
        def terms():
            for t in self.terms:
                presence = None if t.presence is None else (t.presence[0], convert(t.presence[1]))
                yield CostTerm(t.genes, convert(t.table), presence, tuple((g, convert(v)) for g, v in t.factors))
        return replace(self, terms=tuple(terms()))


def one_hot(choices: Mapping[str, Sequence[int]], genome: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The probabilities that put all mass on ``genome``; a gene the genome lacks (a block beyond its depth)
    takes its first choice, which does not change the cost since the block is absent."""
    probs = {}
    for label, values in choices.items():
        p = np.zeros(len(values))
        p[list(values).index(genome[label]) if label in genome else 0] = 1.0
        probs[label] = p
    return probs


def _conv_cost(kind: str, op: Conv) -> float:
    if kind == "macs":
        return float(op.macs)
    if kind == "bitops":
        return float(op.macs)  # times E[wbits] E[abits] (factors), or the fixed widths
    return float(op.cout * op.fan_in)  # memory: weights in bits, times E[wbits]


def _bits_factor(kind: str, op: Conv, which: str) -> tuple[str, np.ndarray] | float:
    """The bit-width factor of a conv's cost: a gene's (label, values) or the fixed width."""
    if kind == "macs" or (kind == "memory" and which == "abits"):
        return 1.0
    choices = op.wbits_choices if which == "wbits" else op.abits_choices
    if len(choices) > 1:
        return (f"{op.label}.{which}", np.asarray(choices, dtype=np.float64))
    return float(op.wbits if which == "wbits" else op.abits)


def expected_cost(spec: SpaceSpec, kind: str, height: int, width: int,
                  table: LatencyTable | None = None) -> ExpectedCost:
    """The expectation of cost ``kind`` (``bitops`` and ``macs`` at ``height`` x ``width``; ``memory`` in
    bytes; ``latency`` in ms from ``table``, at its resolution) as a function of the genes' probabilities."""
    if kind not in COST_KINDS:
        raise ValueError(f"cost {kind!r} is not allowed; allowed: {list(COST_KINDS)}")
    if kind == "latency":
        if table is None:
            raise ValueError("an expected latency needs a latency table")
        height, width = table.resolution
        missing = table.missing(spec)
        if missing:
            raise LatencyTableError(f"the latency table has no entry for {len(missing)} block(s) of this space (e.g. "
                                    f"{missing[0].key!r}): it was built for another space or is unfinished; rebuild it")
    terms: list[CostTerm] = []
    constant = table.overhead_ms if kind == "latency" else 0.0
    choices: dict[str, tuple[int, ...]] = {}
    for unit in unit_choices(spec, height, width):
        labels = tuple(g.label for g in unit.genes)
        choices.update({g.label: g.choices for g in unit.genes})
        shape = tuple(len(g.choices) for g in unit.genes)
        presence = None
        if unit.depth is not None:
            choices[unit.depth.label] = unit.depth.choices
            presence = (unit.depth.label, np.asarray([float(v in unit.present) for v in unit.depth.choices]))
        if kind == "latency":
            cost = np.asarray([table.entries[plan.unit(unit.unit.label).key] + table.unit_overhead_ms
                               for _, plan in unit.variants])
            terms.append(CostTerm(labels, cost.reshape(shape), presence))
            continue
        unit_convs = [op.label for op in unit.variants[0][1].convs() if op.unit == unit.unit.label]
        for label in unit_convs:
            per_variant = [plan.op(label) for _, plan in unit.variants]
            cost = np.asarray([_conv_cost(kind, op) for op in per_variant]).reshape(shape)
            factors, scale = [], 1.0
            for which in ("wbits", "abits"):
                factor = _bits_factor(kind, per_variant[0], which)
                if isinstance(factor, tuple):
                    factors.append(factor)
                    choices[factor[0]] = tuple(int(v) for v in factor[1])
                else:
                    scale *= factor
            if kind == "memory":  # bytes: weight bits / 8, plus a 32-bit scale and bias per channel
                extra = np.asarray([64.0 * op.cout / 8 for op in per_variant]).reshape(shape)
                terms.append(CostTerm(labels, extra, presence))
                scale /= 8
            terms.append(CostTerm(labels, cost * scale, presence, tuple(factors)))
    return ExpectedCost(kind, tuple(terms), constant, choices)
