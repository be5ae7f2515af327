"""The zoom gene (FasterSeg's zoomed convolution) in the space and the plan: asked only when the config offers
both values, defaulting to the plain block, so genomes written without it keep their meaning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qnas.cost import genome_cost
from qnas.errors import GenomeError
from qnas.space import SearchSpace, network_plan
from qnas.space.plan import Conv, Resize

HW = (32, 48)


@pytest.fixture(scope="module")
def zoom_space(small_space: SearchSpace) -> SearchSpace:
    return SearchSpace(replace(small_space.spec, zoom=(0, 1)))


def test_zoom_genes_exist_only_when_both_values_are_offered(small_space: SearchSpace, zoom_space: SearchSpace) -> None:
    assert not [g for g in small_space.genes() if g.label.endswith(".zoom")]
    zooms = [g for g in zoom_space.genes() if g.label.endswith(".zoom")]
    blocks = [g for g in zoom_space.genes() if g.label.endswith(".k")]
    assert len(zooms) == len(blocks) and all(g.choices == (0, 1) and g.default == 0 for g in zooms)
    # a zoomed block computes less: the largest network is plain, the smallest zoomed; the reference plain
    largest, smallest, reference = zoom_space.largest(), zoom_space.smallest(), zoom_space.uniform(8, 3, 3, 2)
    assert all(largest[g.label] == 0 for g in zooms)
    assert {smallest[label] for label in smallest if label.endswith(".zoom")} == {1}
    assert {reference[label] for label in reference if label.endswith(".zoom")} == {0}
    all_zoomed = SearchSpace(replace(small_space.spec, zoom=(1,)))
    assert all_zoomed.genes() == small_space.genes()  # one value: no gene, every block zoomed
    assert all(isinstance(op, Resize) for op in network_plan(all_zoomed.spec, all_zoomed.largest(), *HW).ops
               if op.label.endswith(".up"))


def test_a_genome_without_zoom_genes_means_the_plain_network(small_space: SearchSpace, zoom_space: SearchSpace,
                                                             rng: np.random.Generator) -> None:
    for genome in [small_space.largest(), small_space.smallest(), *(small_space.sample(rng) for _ in range(5))]:
        read = zoom_space.validate(dict(genome))
        assert all(read[label] == 0 for label in read if label.endswith(".zoom"))
        assert network_plan(zoom_space.spec, read, *HW).ops == network_plan(small_space.spec, genome, *HW).ops
        assert [u.key for u in network_plan(zoom_space.spec, read, *HW).units] == \
            [u.key for u in network_plan(small_space.spec, genome, *HW).units]
    with pytest.raises(GenomeError, match="zoom: 2 is not allowed; allowed: \\[0, 1\\]"):
        zoom_space.validate({**zoom_space.largest(), "s1.b0.zoom": 2})


@pytest.mark.parametrize("size", [HW, (30, 46)])
def test_a_zoomed_block_is_a_strided_dilated_depthwise_conv_and_a_nearest_resize(zoom_space: SearchSpace,
                                                                                  size: tuple[int, int]) -> None:
    plain = zoom_space.largest()
    for label in ("s1.b0", "s2.b0"):  # stride 1 and stride 2
        zoomed = zoom_space.validate({**plain, f"{label}.zoom": 1})
        before, after = (network_plan(zoom_space.spec, g, *size) for g in (plain, zoomed))
        dw, zdw = before.op(f"{label}.dw"), after.op(f"{label}.dw")
        assert isinstance(zdw, Conv) and zdw.depthwise
        assert (zdw.stride, zdw.dilation, zdw.padding) == (2 * dw.stride, 2, 2 * (dw.kernel // 2))
        assert zdw.hw == tuple((v + 1) // 2 for v in dw.hw)  # every second pixel of the plain output
        up = after.op(f"{label}.up")
        assert isinstance(up, Resize) and up.mode == "nearest" and up.hw == dw.hw and up.inputs == (zdw.label,)
        assert after.readers[up.label] == (f"{label}.pw2",) and after.grid_reader(zdw.label).label == f"{label}.pw2"
        key = after.unit(label).key
        assert key == before.unit(label).key + " z1"
        cut = genome_cost(zoom_space.spec, plain, *size).macs - genome_cost(zoom_space.spec, zoomed, *size).macs
        assert cut == dw.macs - zdw.macs > 0
