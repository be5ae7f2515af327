"""The training augmentation's cost per batch (``data.augment``, kornia), against a training step.

Usage: python benchmarks/augment_cost.py [--device cpu|cuda] [--threads 2] [--repeats 10]

Two cases: the default task (configs/digits.yaml's batch of 16 at 64x64 with the Cityscapes recipe:
scale 0.5-2.0, crop, flip 0.5, jitter 0.25) against the reference subnet's QAT training step at the
same size; and the Cityscapes recipe itself (configs/cityscapes.yaml: full-resolution 1024x2048
images cropped to 512x1024, batch 12 on a GPU, batch 2 on a CPU). Medians after a warm-up; on a
GPU each measurement is synchronized.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from qnas.config import AugmentConfig, load_config
from qnas.data.augment import Augmentation, batch_seed
from qnas.space import SearchSpace
from qnas.supernet import build_supernet

RECIPE = AugmentConfig(scale=(0.5, 2.0), flip=0.5, jitter=(0.25, 0.25, 0.25, 0.0))


def _median_ms(fn, repeats: int, sync) -> float:
    times = []
    for i in range(repeats + 1):
        tic = time.perf_counter()
        fn(i)
        sync()
        times.append(time.perf_counter() - tic)
    return statistics.median(times[1:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)

    config = load_config("configs/digits.yaml")
    h, w = config.data.train_size
    bs = config.train.batch_size
    images = torch.rand(bs, 3, h, w, device=device)
    labels = torch.randint(0, config.space.num_classes, (bs, h, w), device=device)
    augment = Augmentation(RECIPE, (h, w), 255)
    aug_ms = _median_ms(lambda i: augment(images, labels, batch_seed(0, i)), args.repeats, sync)
    net = build_supernet(config.space).to(device)
    net.set_genome(SearchSpace(config.space).uniform(8, 3, 6, 3))

    def step(i: int) -> None:
        logits, aux = net.forward_train(images)
        (F.cross_entropy(logits, labels) + 0.4 * sum(F.cross_entropy(a, labels) for a in aux)).backward()

    step_ms = _median_ms(step, args.repeats, sync)
    print(f"digits, batch {bs} at {h}x{w}: augmentation {aug_ms:.1f} ms, reference QAT step {step_ms:.0f} ms "
          f"({aug_ms / step_ms * 100:.1f}% of a step), {where}")

    city = load_config("configs/cityscapes.yaml")
    (H, W), crop = city.data.eval_size, city.data.train_size
    bs = city.train.batch_size if device.type == "cuda" else 2
    images = torch.rand(bs, 3, H, W, device=device)
    labels = torch.randint(0, 19, (bs, H, W), device=device)
    augment = Augmentation(city.data.augment if city.data.augment.enabled else RECIPE, crop, 255)
    ms = _median_ms(lambda i: augment(images, labels, batch_seed(0, i)), max(3, args.repeats // 3), sync)
    print(f"cityscapes recipe, batch {bs} from {H}x{W} to {crop[0]}x{crop[1]}: augmentation {ms:.0f} ms "
          f"({ms / bs:.0f} ms per image), {where}")


if __name__ == "__main__":
    main()
