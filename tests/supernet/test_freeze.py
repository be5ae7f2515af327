"""freeze(genome) must equal the supernet bit for bit, and its shape must match the cost model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qnas.cost import genome_cost
from qnas.space import SearchSpace
from qnas.space import NETWORKS, network_plan
from qnas.supernet import ElasticBatchNorm2d, ElasticQConv2d, QConv2d, build_supernet, freeze


@pytest.fixture(scope="module")
def trained_like_supernet(small_space: SearchSpace):
    """A supernet with non-trivial BN statistics, clips and kernel transforms, in eval mode."""
    torch.manual_seed(0)
    net = build_supernet(small_space.spec)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ElasticBatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
            if isinstance(m, ElasticQConv2d):
                for t in m.transforms.values():
                    t.add_(0.05 * torch.randn(t.shape, generator=gen))
                m.act_quant.alpha.mul_(torch.empty_like(m.act_quant.alpha).uniform_(0.3, 1.0, generator=gen))
    return net.eval()


def _genomes(space: SearchSpace, n: int) -> list:
    rng = np.random.default_rng(42)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def test_freeze_is_bit_identical(trained_like_supernet, small_space: SearchSpace) -> None:
    net = trained_like_supernet
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    outputs = set()
    for genome in _genomes(small_space, 20):
        net.set_genome(genome)
        with torch.no_grad():
            expected = net(x)
            frozen = freeze(net, genome).eval()
            got = frozen(x)
        assert torch.equal(expected, got), genome
        outputs.add(expected.sum().item())
    assert len(outputs) == 22  # every genome computes something different


def test_frozen_model_is_static(trained_like_supernet, small_space: SearchSpace) -> None:
    genome = small_space.sample(np.random.default_rng(0))
    active = trained_like_supernet.genome
    frozen = freeze(trained_like_supernet, genome)
    assert trained_like_supernet.genome == active  # freezing leaves the supernet as it was
    kinds = {type(m) for m in frozen.modules()}
    assert ElasticQConv2d not in kinds and ElasticBatchNorm2d not in kinds
    assert QConv2d in kinds and nn.BatchNorm2d in kinds
    assert not any("transform" in name for name, _ in frozen.named_parameters())
    for conv in frozen.quantized_layers():
        assert len(conv.act_quant.bits_choices) == 1 and len(conv.weight_quant.bits_choices) == 1
    assert set(frozen.units) == {op.label for op in network_plan(small_space.spec, genome, 64, 64).convs()}
    assert {label.split(".")[1] for label in frozen.units if label.startswith("s2.")} == {
        f"b{b}" for b in range(genome["s2.depth"])}


def test_quantization_is_on_and_matters(trained_like_supernet, small_space: SearchSpace) -> None:
    net = trained_like_supernet
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    net.set_genome(small_space.uniform(8, 3, 6, 3))
    with torch.no_grad():
        y8 = net(x)
        net.set_genome(small_space.uniform(4, 3, 6, 3))
        y4 = net(x)
        net.set_quantization(False)
        yf = net(x)
        net.set_quantization(True)
    assert (y8 - yf).abs().max() < (y4 - yf).abs().max()
    assert not torch.equal(y8, yf)


def _counted(model, x: torch.Tensor) -> tuple[int, int, int]:
    """MACs and BitOps counted from the output shapes and weights the frozen model really computes with."""
    macs = bitops = 0

    def count(unit, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs, bitops
        conv = unit.conv
        m = out[0].numel() * conv.weight[0].numel()
        macs += m
        bitops += m * conv.weight_quant.active_bits * conv.act_quant.active_bits

    hooks = [unit.register_forward_hook(count) for unit in model.units.values()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for m in model.modules() if isinstance(m, (QConv2d, nn.BatchNorm2d))
                 for name, p in m.named_parameters(recurse=False))
    return macs, bitops, params


def test_analytic_cost_equals_hook_count(small_space: SearchSpace) -> None:
    net = build_supernet(small_space.spec).eval()
    x = torch.zeros(1, 3, 32, 64)
    for genome in _genomes(small_space, 50):
        macs, bitops, params = _counted(freeze(net, genome), x)
        cost = genome_cost(small_space.spec, genome, 32, 64)
        assert (macs, bitops, params) == (cost.macs, cost.bitops, cost.params)


def test_weight_sharing_slices_the_same_tensor(small_space: SearchSpace) -> None:
    net = build_supernet(small_space.spec)
    genome = small_space.uniform(8, 3, 3, 2)
    frozen = freeze(net, genome)
    big = net.layer("s2.b0.pw1")
    small = frozen.layer("s2.b0.pw1")
    assert torch.equal(small.weight, big.weight[: small.out_channels])
    dw_big = net.layer("s2.b0.dw")
    dw = frozen.layer("s2.b0.dw")
    centre = dw_big.weight[: dw.out_channels, :, 1:4, 1:4]
    assert torch.equal(dw.weight, (centre.reshape(-1, 9) @ dw_big.transforms["5to3"]).reshape(centre.shape))


def test_depth_keeps_first_blocks_and_training_updates_bn(small_space: SearchSpace) -> None:
    net = build_supernet(small_space.spec).train()
    net.set_genome(small_space.uniform(8, 3, 6, 2))
    bn_last = net.unit("s1.b3.pw1").bn
    bn_first = net.unit("s1.b0.dw").bn
    before_last, before_first = bn_last.running_mean.clone(), bn_first.running_mean.clone()
    net(torch.rand(2, 3, 64, 64))
    assert torch.equal(bn_last.running_mean, before_last)
    active = 16 * 6
    assert not torch.equal(bn_first.running_mean[:active], before_first[:active])


def test_gradients_reach_shared_weights_and_clips(small_space: SearchSpace) -> None:
    net = build_supernet(small_space.spec).train()
    net.set_genome(small_space.uniform(4, 3, 4, 3))
    logits, aux = net.forward_train(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 11, 64, 64) and [a.shape for a in aux] == [logits.shape] * 2
    (logits.square().mean() + sum(a.square().mean() for a in aux)).backward()
    dw = net.layer("s1.b0.dw")
    assert dw.transforms["5to3"].grad is not None and dw.transforms["5to3"].grad.abs().sum() > 0
    assert dw.act_quant.alpha.grad is not None
    idx = dw.act_quant.bits_choices.index(4)
    assert dw.act_quant.alpha.grad[idx] != 0 and dw.act_quant.alpha.grad[-1] == 0
    assert net.layer("stem.conv").act_quant.alpha.grad is None  # the 8-bit input is not learned


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_registered_networks_build_and_freeze(name: str, small_space: SearchSpace) -> None:
    from dataclasses import replace

    net = build_supernet(replace(small_space.spec, network=name)).eval()
    genome = small_space.sample(np.random.default_rng(9))
    net.set_genome(genome)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), freeze(net, genome).eval()(x))


def test_bilinear_upsampling_is_configurable(small_space: SearchSpace) -> None:
    from dataclasses import replace

    net = build_supernet(replace(small_space.spec, upsample="bilinear")).eval()
    genome = small_space.sample(np.random.default_rng(2))
    net.set_genome(genome)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), freeze(net, genome).eval()(x))
