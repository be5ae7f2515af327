"""BatchNorm recalibration restores a subnet whose running statistics are wrong."""

from __future__ import annotations

import torch

from qnas.data import DigitScenes, make_loader
from qnas.space import SearchSpace
from qnas.supernet import build_supernet, freeze, recalibrate_bn
from qnas.train import evaluate, train_epochs

EASY = dict(contrast=(0.8, 1.0), clutter=0.2, distractors=(0, 0), strokes=(0, 0), scale=(0.3, 0.45),
            noise=0.0, jitter=0.0)


def test_recalibration_replaces_statistics_and_restores_accuracy(small_space: SearchSpace) -> None:
    torch.manual_seed(0)
    data = DigitScenes("train", 16, 64, 64, seed=0, **EASY)
    loader = make_loader(data, 16, shuffle=False, seed=0)
    images = [x for x, _ in loader]
    model = freeze(build_supernet(small_space.spec), small_space.uniform(8, 3, 6, 2))
    train_epochs(model, loader, 60, 3e-3, optimizer="adam", weight_decay=0.0)
    good_meter = evaluate(model, loader, 11)
    good = good_meter.pixel_accuracy()
    # Statistics that belong to another network (what a supernet holds for any one subnet).
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.running_mean.normal_(0.0, 3.0)
        m.running_var.uniform_(5.0, 10.0)
    wrong_meter = evaluate(model, loader, 11)
    wrong = wrong_meter.pixel_accuracy()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    momenta = [m.momentum for m in norms]
    model.eval()
    assert recalibrate_bn(model, images) == 1
    fixed_meter = evaluate(model, loader, 11)
    fixed = fixed_meter.pixel_accuracy()
    # mIoU: ~0.14 with the training-time running statistics, ~0.001 with wrong ones, ~0.37 recalibrated
    assert wrong_meter.miou() < fixed_meter.miou() - 0.1 and fixed_meter.miou() >= good_meter.miou() - 0.02
    assert wrong < good - 0.05, (wrong, good)
    assert fixed > wrong + 0.05 and abs(fixed - good) < 0.05, (wrong, fixed, good)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())  # only statistics change
    assert [m.momentum for m in norms] == momenta and not model.training
    # The statistics are the exact batch statistics of the first BN's input.
    stem = model.plan(64, 64).op("stem.conv")
    with torch.no_grad():
        x = model.layer("stem.conv")(images[0], stem)
    torch.testing.assert_close(model.unit("stem.conv").bn.running_mean, x.mean((0, 2, 3)))


def test_recalibrating_the_supernet_equals_recalibrating_the_cut_subnet(small_space: SearchSpace, rng) -> None:
    torch.manual_seed(1)
    supernet = build_supernet(small_space.spec)
    images = [torch.rand(4, 3, 32, 32) for _ in range(2)]
    genome = small_space.sample(rng)
    subnet = freeze(supernet, genome)
    supernet.set_genome(genome)
    recalibrate_bn(supernet, images)
    recalibrate_bn(subnet, images)
    supernet.eval()
    subnet.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(supernet(x), subnet(x))
