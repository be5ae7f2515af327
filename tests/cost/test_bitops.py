from __future__ import annotations

import numpy as np

from qnas.cost import genome_cost
from qnas.space import SearchSpace, SpaceSpec, network_plan


def test_hand_computed_example() -> None:
    """One stage of depth 2 with tiny widths, counted by hand layer by layer at 32x32."""
    spec = SpaceSpec(num_classes=2, stem_channels=(2, 2, 2), stage_channels=(2,), stage_strides=(1,),
                     highres_channels=2, head_channels=(2, 2), depths=(2,), kernels=(3,), expands=(3,),
                     bits=(4, 8))
    space = SearchSpace(spec)
    g = space.uniform(4, 3, 3, 2)
    # stem.conv: out 16x16x2, in 3, k3 -> 256*2*3*9 = 13824 MACs at W4 x A8 (fixed input bits)
    # stem.ds1: dw 8x8x2*9 = 1152, pw 64*2*2 = 256; stem.ds2: dw 4x4x2*9 = 288, pw 16*2*2 = 64
    # each block at 4x4: pw1 16*6*2 = 192, dw 16*6*9 = 864, pw2 16*2*6 = 192 -> 1248, two blocks 2496
    # hr: dw 288, pw 64; head.ds1 on 4 channels: dw 16*4*9 = 576, pw 16*2*4 = 128;
    # head.ds2: dw 288, pw 64; classifier: 16*2*2 = 64 MACs at W8A8
    searchable = 1152 + 256 + 288 + 64 + 2496 + 288 + 64 + 576 + 128 + 288 + 64
    cost = genome_cost(spec, g, 32, 32)
    assert cost.macs == 13824 + searchable + 64
    assert cost.bitops == 13824 * 4 * 8 + searchable * 16 + 64 * 64
    assert cost.bitops_searchable == cost.bitops - 64 * 64
    layers = {op.label: op for op in network_plan(spec, g, 32, 32).convs()}
    assert layers["s1.b1.dw"].groups == 6 and layers["classifier"].bias


def test_bitops_scale_with_bits(small_space: SearchSpace) -> None:
    spec = small_space.spec
    c8 = genome_cost(spec, small_space.uniform(8, 3, 6, 3), 64, 64)
    c4 = genome_cost(spec, small_space.uniform(4, 3, 6, 3), 64, 64)
    assert c8.macs == c4.macs and c8.params == c4.params
    # 4x fewer everywhere but the stem conv, whose 8-bit input halves the saving there
    assert c8.bitops_searchable / 4 < c4.bitops_searchable < c8.bitops_searchable / 3
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = small_space.sample(rng)
        c = genome_cost(spec, g, 64, 128)
        assert c.bitops_searchable < c.bitops <= c.macs * 64


def test_weight_memory_is_what_the_frozen_network_stores(small_space: SearchSpace) -> None:
    """Analytic weight memory = every frozen conv's weights at its weight bits + 32-bit scale and bias per channel."""
    import torch

    from qnas.cost.bitops import weight_memory_bits, weight_memory_bytes
    from qnas.supernet import build_supernet, freeze
    from qnas.supernet.ops import QConv2d

    torch.manual_seed(0)
    net = build_supernet(small_space.spec)
    rng = np.random.default_rng(3)
    for genome in [small_space.uniform(8, 3, 6, 3), small_space.uniform(4, 5, 3, 2), small_space.sample(rng),
                   small_space.sample(rng)]:
        convs = [m for m in freeze(net, genome).modules() if isinstance(m, QConv2d)]
        counted = sum(m.weight.numel() * m.weight_quant.grid_bits + 64 * m.out_channels for m in convs)
        assert weight_memory_bits(small_space.spec, genome) == counted
        assert weight_memory_bytes(small_space.spec, genome) == counted / 8
    w8, w4 = (weight_memory_bytes(small_space.spec, small_space.uniform(b, 3, 6, 3)) for b in (8, 4))
    assert w4 < w8 < 2 * w4 + 1  # halving the bits nearly halves it (the stem's and classifier's bits are fixed)
