from __future__ import annotations

import math

import numpy as np
import pytest

from qnas.errors import GenomeError
from qnas.space import Genome, SearchSpace, SpaceSpec


def test_labels_follow_depth(small_space: SearchSpace) -> None:
    g = small_space.uniform(8, 3, 6, 2)
    assert "s1.b1.k" in g and "s1.b2.k" not in g
    assert "s2.b0.pw1.wbits" in g and "s2.depth" in g
    assert "classifier.wbits" not in g and "stem.conv.abits" not in g
    assert g["hr.dw.abits"] == 8


def test_genome_is_a_hashable_value(small_space: SearchSpace, rng: np.random.Generator) -> None:
    g = small_space.sample(rng)
    same = Genome(dict(reversed(list(g.items()))))
    assert g == same and hash(g) == hash(same)
    assert len({g, same}) == 1
    with pytest.raises(AttributeError):
        g.x = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        g["s1.depth"] = 2  # type: ignore[index]


def test_sample_mutate_crossover_are_valid_and_seeded(small_space: SearchSpace) -> None:
    a = [small_space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    pop = [small_space.sample(rng) for _ in range(30)]
    for i in range(60):
        child = small_space.crossover(pop[i % 30], pop[(i * 7 + 3) % 30], rng)
        assert small_space.validate(child) == child
        mutant = small_space.mutate(child, rng, 0.2)
        assert small_space.validate(mutant) == mutant
    depths = {small_space.sample(rng)["s2.depth"] for _ in range(50)}
    assert depths == {2, 3, 4}


def test_mutation_probability_bounds(small_space: SearchSpace, rng: np.random.Generator) -> None:
    g = small_space.sample(rng)
    assert small_space.mutate(g, rng, 0.0) == g
    changed = sum(small_space.mutate(g, rng, 1.0) != g for _ in range(10))
    assert changed == 10
    with pytest.raises(ValueError):
        small_space.mutate(g, rng, 1.5)


def test_mutate_rate_is_per_gene(small_space: SearchSpace) -> None:
    rng = np.random.default_rng(3)
    g = small_space.uniform(8, 3, 6, 4)  # depth 4 everywhere: no genes appear or vanish by depth growth
    diffs = []
    for _ in range(200):
        m = small_space.mutate(g, rng, 0.2)
        common = [k for k in g if k in m]
        diffs.append(np.mean([g[k] != m[k] for k in common]))
    # a resample changes the value with probability (n-1)/n (n = 2 or 3 choices), so the rate is ~0.12
    assert 0.08 < float(np.mean(diffs)) < 0.16


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"s1.b0.pw1.wbits": 5}, "s1.b0.pw1.wbits: 5 is not allowed; allowed: [4, 6, 8]"),
        ({"s1.b0.q": 3}, "unknown genome label 's1.b0.q'"),
        ({"s1.depth": 5}, "s1.depth: 5 is not allowed; allowed: [2, 3, 4]"),
        ({"s1.b3.k": 3}, "'s1.b3.k' describes a block beyond s1.depth=3"),
        ({"classifier.wbits": 4}, "unknown genome label 'classifier.wbits'"),
        ({"s2.b0.k": "3"}, "s2.b0.k: '3' is not allowed"),
    ],
)
def test_validate_names_the_offender(small_space: SearchSpace, edit: dict, message: str) -> None:
    genes = dict(small_space.uniform(8, 3, 6, 3)) | edit
    with pytest.raises(GenomeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        small_space.validate(genes)


def test_missing_label(small_space: SearchSpace) -> None:
    genes = dict(small_space.uniform(8, 3, 6, 3))
    del genes["hr.pw.abits"]
    with pytest.raises(GenomeError, match="missing genome label 'hr.pw.abits'"):
        small_space.validate(genes)


def test_extremes_and_size() -> None:
    space = SearchSpace(SpaceSpec())
    big, small = space.largest(), space.smallest()
    assert big["s3.depth"] == 4 and big["s3.b3.e"] == 6 and big["head.ds1.pw.wbits"] == 8
    assert small["s1.depth"] == 2 and small["s1.b1.k"] == 3 and small["hr.dw.abits"] == 4
    assert space.size() > 10**40


def test_choices_come_from_the_spec() -> None:
    space = SearchSpace(SpaceSpec(bits=(8, 4), kernels=(3,), expands=(6,), depths=(3,)))
    g = space.sample(np.random.default_rng(0))
    assert {g[k] for k in g if k.endswith("bits")} <= {4, 8}
    assert all(g[k] == 3 for k in g if k.endswith(".k"))


def test_a_pinned_space_varies_the_bit_widths_alone(small_space: SearchSpace) -> None:
    reference = small_space.uniform(8, 3, 6, 2)
    shape = small_space.architecture(reference)
    assert shape["s2.depth"] == 2 and "s1.b0.k" in shape and not any(k.endswith("bits") for k in shape)
    pinned = small_space.pinned(shape)
    rng = np.random.default_rng(0)
    pop = [pinned.sample(rng) for _ in range(20)]
    children = [pinned.mutate(pinned.crossover(pop[i], pop[-1 - i], rng), rng, 0.5) for i in range(20)]
    for genome in pop + children:
        assert small_space.architecture(genome) == shape  # the shape never moves
        assert small_space.validate(genome) == genome  # and the genome is one of the whole space
    assert len({g["s1.b0.pw1.wbits"] for g in pop}) > 1  # the bit widths do
    assert len({g for g in pop}) == 20
    assert pinned.largest() == reference and pinned.smallest() == small_space.uniform(4, 3, 6, 2)
    assert pinned.size() == math.prod(len(g.choices) for g in pinned.genes() if g.kind == "bits")
    with pytest.raises(GenomeError, match="not allowed"):
        pinned.validate(small_space.uniform(8, 5, 6, 2))  # outside the pinned shape
    with pytest.raises(GenomeError, match="s1.b0.k: 4 is not allowed"):
        small_space.pinned({"s1.b0.k": 4})
    with pytest.raises(GenomeError, match="cannot pin 's9.depth'"):
        small_space.pinned({"s9.depth": 2})
    assert small_space.pins == {}  # pinning makes a new space
