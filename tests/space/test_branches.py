"""The head's branches as a gene: which stage outputs the head fuses (the deepest always), defaulting to all of
them, so genomes written without it keep their meaning; the head's first convs read the chosen channels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qnas.cost import genome_cost
from qnas.errors import FieldError
from qnas.space import SearchSpace, SpaceSpec, network_plan

HW = (32, 48)


@pytest.fixture(scope="module")
def branch_space(small_space: SearchSpace) -> SearchSpace:
    return SearchSpace(replace(small_space.spec, branches=(4, 5, 6, 7)))


def test_the_branch_gene_and_its_choices(small_space: SearchSpace, branch_space: SearchSpace) -> None:
    assert "head.branches" not in {g.label for g in small_space.genes()}
    gene = next(g for g in branch_space.genes() if g.label == "head.branches")
    assert gene.choices == (4, 5, 6, 7) and gene.default == 7
    assert branch_space.largest()["head.branches"] == 7 and branch_space.smallest()["head.branches"] == 4
    with pytest.raises(FieldError, match="branches: 3 is not allowed; allowed: \\[4, 5, 6, 7\\]"):
        replace(small_space.spec, branches=(3, 7))  # a mask without the deepest stage leaves it computing nothing
    with pytest.raises(FieldError, match="branches: 8 is not allowed"):
        replace(small_space.spec, branches=(8,))
    with pytest.raises(FieldError, match="branches: must include 7"):  # the supernet holds the head of every branch
        replace(small_space.spec, branches=(4, 5, 6))
    assert SearchSpace(replace(small_space.spec, branches=(7,))).genes() == small_space.genes()  # one mask: no gene


def test_a_genome_without_the_gene_means_every_branch(small_space: SearchSpace, branch_space: SearchSpace,
                                                      rng: np.random.Generator) -> None:
    for genome in [small_space.largest(), small_space.smallest(), *(small_space.sample(rng) for _ in range(4))]:
        read = branch_space.validate(dict(genome))
        assert read["head.branches"] == 7
        assert network_plan(branch_space.spec, read, *HW).ops == network_plan(small_space.spec, genome, *HW).ops
        assert network_plan(branch_space.spec, read, *HW).unit("head").key == \
            network_plan(small_space.spec, genome, *HW).unit("head").key


@pytest.mark.parametrize("mask,stages", [(4, (3,)), (5, (1, 3)), (6, (2, 3)), (7, (1, 2, 3))])
def test_the_head_fuses_the_chosen_stages_and_its_first_convs_read_their_channels(
        branch_space: SearchSpace, mask: int, stages: tuple[int, ...]) -> None:
    spec: SpaceSpec = branch_space.spec
    genome = branch_space.validate({**branch_space.largest(), "head.branches": mask})
    plan = network_plan(spec, genome, *HW)
    fuse = plan.op("fuse")
    assert fuse.inputs == (*(f"fuse.s{s}" for s in stages), "hr.pw")
    assert not any(f"fuse.s{s}" in plan.by_label for s in range(1, 4) if s not in stages)
    starts = np.cumsum((0, *spec.stage_channels))
    index = [c for s in stages for c in range(starts[s - 1], starts[s])] + \
        list(range(starts[-1], starts[-1] + spec.highres_channels))
    dw, pw = plan.op("head.ds1.dw"), plan.op("head.ds1.pw")
    assert dw.cin == dw.cout == pw.cin == fuse.channels == len(index)
    assert (list(dw.channel_index), list(pw.channel_index)) == ((index, index) if mask != 7 else ([], []))
    head = plan.unit("head")
    assert head.cin == len(index) and head.key.endswith(f" b{mask}" if mask != 7 else f"c{len(index)}-{spec.num_classes}")
    full = genome_cost(spec, branch_space.largest(), *HW).macs
    cut = sum(op.macs for op in network_plan(spec, branch_space.largest(), *HW).convs() if op.label.startswith("head.ds1")) \
        - dw.macs - pw.macs
    assert full - genome_cost(spec, genome, *HW).macs == cut
