"""Schedules as data and the sandwich rule."""

from __future__ import annotations

import pytest

from qnas.config import TrainConfig
from qnas.space import SearchSpace
from qnas.train import Stage, baseline_stages, finetune_stages, step_genomes, supernet_stages


def test_supernet_stages_follow_the_config(small_space: SearchSpace, tiny_train: TrainConfig) -> None:
    stages = supernet_stages(tiny_train, small_space)
    assert [s.name for s in stages] == ["float-warmup", "full", "all"]
    assert stages[0].genome == small_space.largest() and not stages[0].quantize
    assert stages[1].depths == (4,) and stages[1].quantize and stages[2].depths == (2, 3, 4)


def test_sandwich_holds_largest_smallest_and_random(small_space: SearchSpace, tiny_train: TrainConfig) -> None:
    stage = supernet_stages(tiny_train, small_space)[2]
    spec = small_space.spec
    for step in range(20):
        genomes = step_genomes(small_space, stage, 2, seed=0, step=step)
        assert len(genomes) == 4
        assert genomes[0] == small_space.uniform(max(spec.bits), max(spec.kernels), max(spec.expands), 4)
        assert genomes[1] == small_space.smallest()
        for g in genomes:
            assert set(small_space.depths(g).values()) <= set(stage.depths)
    assert step_genomes(small_space, stage, 2, 0, 5) == step_genomes(small_space, stage, 2, 0, 5)
    assert step_genomes(small_space, stage, 2, 0, 5) != step_genomes(small_space, stage, 2, 0, 6)


def test_depth_restricted_phase_samples_only_its_depths(small_space: SearchSpace, tiny_train: TrainConfig) -> None:
    full = supernet_stages(tiny_train, small_space)[1]
    for step in range(10):
        for g in step_genomes(small_space, full, 3, 1, step):
            assert set(small_space.depths(g).values()) == {4}


def test_fixed_genome_stages(small_space: SearchSpace) -> None:
    g = small_space.uniform(6, 3, 6, 3)
    cfg = TrainConfig()
    assert [(s.name, s.quantize) for s in baseline_stages(cfg, g)] == [("float", False), ("qat", True)]
    assert all(step_genomes(small_space, s, 3, 0, 0) == [g] for s in baseline_stages(cfg, g))
    assert finetune_stages(cfg, g)[0].genome == g
    with pytest.raises(ValueError):
        Stage("bad", 1, 1e-3, True)


def test_the_sandwich_takes_the_new_genes_at_their_largest_and_smallest(small_space: SearchSpace) -> None:
    """With zoom and branch genes, the sandwich's largest subnet is plain and fuses every branch, its smallest is
    zoomed and fuses the deepest stage only (the genes' extremes, not their defaults)."""
    from dataclasses import replace

    space = SearchSpace(replace(small_space.spec, zoom=(0, 1), branches=(4, 5, 6, 7)))
    stage = supernet_stages(TrainConfig(), space)[-1]
    largest, smallest = step_genomes(space, stage, 1, seed=0, step=0)[:2]
    assert largest["head.branches"] == 7 and smallest["head.branches"] == 4
    assert {v for k, v in largest.items() if k.endswith(".zoom")} == {0}
    assert {v for k, v in smallest.items() if k.endswith(".zoom")} == {1}
