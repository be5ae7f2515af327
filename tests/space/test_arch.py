"""The genome's blocks and the network's resolutions, as every layer above reads them."""

from __future__ import annotations

import numpy as np

from qnas.space import SearchSpace, conv_layers, mbconv_blocks, stage_resolutions


def test_blocks_follow_the_genome_and_chain_their_channels(small_space: SearchSpace, rng: np.random.Generator) -> None:
    spec = small_space.spec
    for _ in range(20):
        genome = small_space.sample(rng)
        blocks = mbconv_blocks(spec, genome)
        assert len(blocks) == sum(genome[f"s{s}.depth"] for s in range(1, spec.num_stages + 1))
        cin = spec.stem_channels[-1]
        for block in blocks:
            assert block.cin == cin and block.cout == spec.stage_channels[block.stage - 1]
            assert block.stride == (spec.stage_strides[block.stage - 1] if block.index == 0 else 1)
            assert (block.kernel, block.expand) == (genome[f"{block.label}.k"], genome[f"{block.label}.e"])
            cin = block.cout


def test_stage_resolutions_are_those_of_the_convs(small_space: SearchSpace) -> None:
    spec, genome = small_space.spec, small_space.largest()
    stem_hw, stage_hw = stage_resolutions(spec, 50, 66)
    layers = {layer.name: layer for layer in conv_layers(spec, genome, 50, 66)}
    assert layers["hr.dw"].in_hw == stem_hw
    for s in range(1, spec.num_stages + 1):
        last = layers[f"s{s}.b{genome[f's{s}.depth'] - 1}.pw2"]
        assert last.out_hw == stage_hw[s - 1]
