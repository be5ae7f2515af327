"""Supernet forward + backward time per batch (main + auxiliary losses), default config.

Usage: python benchmarks/step_time.py [--threads 2] [--batch-size 16] [--repeats 8] [--device cuda]
       [--amp bf16|fp16] [--channels-last]
Prints the median over repeats (the first run is a warm-up) for the largest subnet, the
reference architecture and the smallest subnet, quantized and float (on a GPU, each step is
synchronized before the clock is read).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from qnas.config import load_config
from qnas.space import SearchSpace
from qnas.supernet import build_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0, help="default: train.batch_size")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                        help="autocast the float steps (as train.amp does; QAT steps stay float32)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC network and inputs (train.channels_last)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config)
    space = SearchSpace(config.space)
    device = torch.device(args.device)
    net = build_supernet(config.space).to(device)
    bs = args.batch_size or config.train.batch_size
    h, w = config.data.train_size
    x = torch.rand(bs, 3, h, w, device=device)
    if args.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    dtype = {"off": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    y = torch.randint(0, config.space.num_classes, (bs, h, w), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cases = [("largest", space.largest()), ("reference k3 e6 d3 (8-bit)", space.uniform(8, 3, 6, 3)),
             ("smallest", space.smallest())]
    for name, genome in cases:
        for quantized in (True, False):
            net.set_genome(genome)
            net.set_quantization(quantized)
            times = []
            for _ in range(args.repeats + 1):
                tic = time.perf_counter()
                with torch.autocast(device.type, dtype=dtype, enabled=args.amp != "off" and not quantized):
                    logits, aux = net.forward_train(x)
                    loss = F.cross_entropy(logits, y) + 0.4 * sum(F.cross_entropy(a, y) for a in aux)
                loss.backward()
                sync()
                times.append(time.perf_counter() - tic)
            print(f"{name:28s} {'QAT ' if quantized else 'float'}: {statistics.median(times[1:]) * 1000:6.0f} ms "
                  f"per batch of {bs} at {h}x{w}, "
                  + (f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device))
                  + (f", {args.amp} autocast" if args.amp != "off" and not quantized else "")
                  + (", channels_last" if args.channels_last else ""))


if __name__ == "__main__":
    main()
