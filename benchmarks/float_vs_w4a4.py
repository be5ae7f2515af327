"""Issue 2 measurement: forward+backward time per batch, and DigitScenes mIoU of the reference
architecture trained in float for a few minutes, then the same network fine-tuned with W4A4 and
W8A8 fake quantization. Usage: python benchmarks/float_vs_w4a4.py [--epochs N] [--threads T]"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qnas.config import load_config
from qnas.data import DigitScenes, make_loader
from qnas.space import SearchSpace
from qnas.supernet import build_supernet, freeze
from qnas.train import evaluate, train_epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config)
    space = SearchSpace(config.space)
    d = config.data
    train = DigitScenes("train", d.train_scenes, *d.train_size, seed=d.seed)
    val = DigitScenes("val", d.val_scenes, *d.eval_size, seed=d.seed)
    train_loader = make_loader(train, args.batch_size or d.batch_size, shuffle=True, seed=0)
    val_loader = make_loader(val, 64, shuffle=False, seed=0)

    supernet = build_supernet(config.space)
    x, y = next(iter(train_loader))
    times = []
    for _ in range(6):
        supernet.set_genome(space.largest())
        t = time.perf_counter()
        logits, aux = supernet.forward_train(x)
        loss = torch.nn.functional.cross_entropy(logits, y) + 0.4 * sum(
            torch.nn.functional.cross_entropy(a, y) for a in aux)
        loss.backward()
        times.append(time.perf_counter() - t)
    print(f"supernet (largest, W8A8) forward+backward, batch {d.batch_size} at {d.train_size}: "
          f"median {statistics.median(times[1:]) * 1000:.0f} ms")

    model = freeze(supernet, space.uniform(8, 3, 6, 3))
    model.set_quantization(False)
    t = time.perf_counter()
    train_epochs(model, train_loader, args.epochs, args.lr, optimizer="adam")
    fp = evaluate(model, val_loader, 11)
    print(f"float reference architecture: mIoU {fp.miou():.4f} after {args.epochs} epochs "
          f"({time.perf_counter() - t:.0f} s)")
    for bits in (8, 4):
        q = freeze(supernet, space.uniform(bits, 3, 6, 3))
        q.load_state_dict({k: v for k, v in model.state_dict().items() if "alpha" not in k and "clip" not in k},
                          strict=False)
        before = evaluate(q, val_loader, 11).miou()
        train_epochs(q, train_loader, args.qat_epochs, args.lr / 3, optimizer="adam")
        print(f"W{bits}A{bits}: mIoU {before:.4f} before QAT, {evaluate(q, val_loader, 11).miou():.4f} "
              f"after {args.qat_epochs} QAT epochs")


if __name__ == "__main__":
    main()
