"""The network plan: one description whose geometry, readers, units and genes every consumer reads."""

from __future__ import annotations

import numpy as np
import pytest

from qnas.space import (
    NETWORKS, Add, Concat, Conv, Input, Output, Resize, SearchSpace, conv_out_size, gene_table, network_plan,
    register_network, space_units,
)


def test_shapes_chain_and_follow_the_genome(small_space: SearchSpace, rng: np.random.Generator) -> None:
    spec = small_space.spec
    for _ in range(20):
        genome = small_space.sample(rng)
        plan = network_plan(spec, genome, 50, 66)
        for op in plan.ops:
            srcs = [plan.op(i) for i in op.inputs]
            if isinstance(op, Conv):
                assert op.cin == srcs[0].channels and op.in_hw == srcs[0].hw
                assert op.hw == tuple(conv_out_size(v, op.kernel, op.stride, op.padding, op.dilation) for v in op.in_hw)
            elif isinstance(op, (Add, Concat)):
                assert len({s.hw for s in srcs}) == 1 and op.hw == srcs[0].hw
            elif isinstance(op, Resize):
                assert op.in_hw == srcs[0].hw
        blocks = [u for u in plan.units if u.kind == "mbconv"]
        assert len(blocks) == sum(genome[f"s{s}.depth"] for s in range(1, spec.num_stages + 1))
        for unit in blocks:
            assert (unit.param("k"), unit.param("e")) == (genome[f"{unit.label}.k"], genome[f"{unit.label}.e"])
            assert plan.op(f"{unit.label}.dw").kernel == genome[f"{unit.label}.k"]
            assert plan.op(f"{unit.label}.pw1").cout == unit.cin * genome[f"{unit.label}.e"]
        assert isinstance(plan.ops[0], Input) and isinstance(plan.ops[-1], Output) and plan.ops[-1].hw == (50, 66)


def test_readers_and_grid_readers(small_space: SearchSpace) -> None:
    plan = network_plan(small_space.spec, small_space.uniform(8, 3, 6, 2), 64, 64)
    assert set(plan.readers["stem.ds2.pw"]) == {"s1.b0.pw1", "s1.b0.add", "hr.dw"} and plan.op("stem.ds2.pw").out_quant
    assert plan.grid_reader("stem.ds2.pw") is None  # two readers at different grids
    assert plan.grid_reader("s1.b0.pw1").label == "s1.b0.dw"
    assert plan.grid_reader("hr.pw").label == "head.ds1.dw"  # through the concatenation
    assert plan.grid_reader("classifier") is None  # logits: read by a resize, then the output
    assert plan.taps["aux"] == ("s2.b1.add", "s3.b1.add")
    assert all(plan.op(f"s{s}.b{b}.pw2").out_quant for s in (1, 2, 3) for b in (0, 1))


def test_units_cover_the_network_and_stand_alone(small_space: SearchSpace) -> None:
    plan = network_plan(small_space.spec, small_space.largest(), 64, 64)
    owned = [name for unit in plan.units for name in unit.ops]
    assert sorted(owned) == sorted(op.label for op in plan.ops) and len(owned) == len(set(owned))
    head = plan.unit_plan("head")
    inputs = [op for op in head.ops if isinstance(op, Input)]
    assert [op.source for op in inputs] == ["s1.b3.add", "s2.b3.add", "s3.b3.add", "hr.pw"]
    assert [op.label for op in head.ops if isinstance(op, Output)] == ["logits"]
    block = plan.unit_plan("s2.b0")
    assert [op.source for op in block.ops if isinstance(op, Input)] == ["s1.b3.add"]
    assert [op.inputs for op in block.ops if isinstance(op, Output)] == [("s2.b0.pw2",)]


def test_space_units_are_every_shape_of_every_position(small_space: SearchSpace) -> None:
    spec = small_space.spec
    keys = {unit.key for unit, _ in space_units(spec, 64, 64)}
    # every (kernel, expand) at each distinct block shape: stage 1's first block (stride 1, 16 -> 16 channels)
    # has the shape of its later blocks, stages 2 and 3 have two shapes each (the strided first block, the rest)
    assert len([k for k in keys if k.startswith("mbconv")]) == (1 + 2 + 2) * len(spec.kernels) * len(spec.expands)
    assert {k.split()[0] for k in keys} == {"stem", "mbconv", "highres", "head"}
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert {u.key for u in network_plan(spec, small_space.sample(rng), 64, 64).units} <= keys


def test_genes_are_what_the_plan_builder_asks_for(small_space: SearchSpace) -> None:
    genes = gene_table(small_space.spec)
    labels = [g.label for g in genes]
    assert labels[:2] == ["stem.conv.wbits", "stem.ds1.dw.wbits"] and "stem.conv.abits" not in labels
    assert labels.index("s1.depth") < labels.index("s1.b0.k") < labels.index("s1.b0.e") < labels.index("s1.b0.pw1.wbits")
    assert {g.kind for g in genes} == {"depth", "arch", "bits"}
    assert [g.label for g in genes if g.kind == "depth"] == ["s1.depth", "s2.depth", "s3.depth"]
    shallow = gene_table(small_space.spec, {"s1.depth": 2})
    assert "s1.b1.k" in {g.label for g in shallow} and "s1.b2.k" not in {g.label for g in shallow}


def test_network_registry() -> None:
    assert "segnas" in NETWORKS
    with pytest.raises(ValueError, match="already registered"):
        register_network("segnas")(lambda spec, b: None)
