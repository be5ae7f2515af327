"""Expected costs under independent gene probabilities: with one-hot probabilities they are the genome's
costs; each is linear in every gene's probabilities."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qnas.cost import genome_cost
from qnas.cost.bitops import weight_memory_bytes
from qnas.cost.expected import COST_KINDS, expected_cost, one_hot
from qnas.cost.latency import LatencyTable, space_blocks
from qnas.space import SearchSpace

HW = (48, 64)


def _table(space: SearchSpace, rng: np.random.Generator) -> LatencyTable:
    entries = {u.key: float(rng.uniform(0.1, 2.0)) for u in space_blocks(space.spec, *HW)}
    return LatencyTable({"backend": "test"}, HW, entries, overhead_ms=0.25, unit_overhead_ms=-0.05)


def _exact(space: SearchSpace, kind: str, genome, table: LatencyTable) -> float:
    cost = genome_cost(space.spec, genome, *HW)
    return {"bitops": cost.bitops, "macs": cost.macs, "memory": weight_memory_bytes(space.spec, genome),
            "latency": table.predict(space.spec, genome)}[kind]


@pytest.mark.parametrize("genes", [{}, {"zoom": (0, 1)}, {"branches": (4, 5, 6, 7)}], ids=["plain", "zoom", "branches"])
@pytest.mark.parametrize("kind", COST_KINDS)
def test_one_hot_probabilities_give_the_genome_cost(kind: str, genes: dict, small_space: SearchSpace,
                                                    rng: np.random.Generator) -> None:
    space = SearchSpace(replace(small_space.spec, **genes))
    table = _table(space, rng)
    cost = expected_cost(space.spec, kind, *HW, table)
    genomes = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(8)]
    for genome in genomes:
        assert cost.value(one_hot(cost.choices, genome)) == pytest.approx(_exact(space, kind, genome, table),
                                                                          rel=1e-12)


@pytest.mark.parametrize("kind", ["bitops", "latency"])
def test_the_expectation_is_linear_in_each_gene(kind: str, small_space: SearchSpace, rng: np.random.Generator) -> None:
    """Moving probability between two choices of one gene (a depth, a kernel, a bit width) moves the expected
    cost linearly between the two genomes' costs, as an expectation over independent genes must."""
    table = _table(small_space, rng)
    cost = expected_cost(small_space.spec, kind, *HW, table)
    base = small_space.largest()
    for label, value in (("s2.depth", 2), ("s1.b0.k", 3), ("s3.b1.pw1.wbits", 4), ("s1.b0.e", 3)):
        other = small_space.validate({k: v for k, v in base.with_genes({label: value}).items()
                                      if k in {g.label for g in small_space.genes(small_space.depths(
                                          base.with_genes({label: value})))}})
        if label not in cost.choices:  # a gene this cost does not depend on (latency: bit widths)
            assert _exact(small_space, kind, base, table) == _exact(small_space, kind, other, table)
            continue
        probs = one_hot(cost.choices, base)
        probs[label] = 0.3 * one_hot(cost.choices, base)[label] + 0.7 * one_hot(cost.choices, other)[label]
        want = 0.3 * _exact(small_space, kind, base, table) + 0.7 * _exact(small_space, kind, other, table)
        assert cost.value(probs) == pytest.approx(want, rel=1e-12), label


def test_unknown_kind_and_latency_without_a_table(small_space: SearchSpace) -> None:
    with pytest.raises(ValueError, match="allowed"):
        expected_cost(small_space.spec, "energy", *HW)
    with pytest.raises(ValueError, match="latency table"):
        expected_cost(small_space.spec, "latency", *HW)
