"""What each target's numerics buy: the files of one network cut from a supernet, scored in their runtimes.

For every ``--target``, the policy is cut from the supernet with that target's numerics (``deploy.target``),
and the ``ort``, ``openvino`` and ``trt`` files of it are run image by image on the validation split in
their runtimes (onnxruntime; OpenVINO's CPU plugin; onnxruntime for the TensorRT Q/DQ file), with their
mIoU and the share of pixels whose class agrees with the model (``qnas.pipeline.score_file``).

Usage: python benchmarks/target_parity.py --supernet RUN [--policy P] [--targets qonnx,ort,trt,openvino] [--out F.md]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from qnas.config import load_config
from qnas.export.latency import get_backend
from qnas.pipeline import Context, load_trained, score_file
from qnas.quant.targets import get_target
from qnas.train import cut_subnet
from qnas.train.subnet import evaluate_subnet

FILES = ("ort", "openvino", "trt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--policy", default="uniform_w8a8")
    parser.add_argument("--targets", default="qonnx,ort,trt,openvino")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(args.config)
    lines = [f"Command: `python benchmarks/target_parity.py --supernet RUN --policy {args.policy}` "
             f"(CPU: {get_backend('ort-cpu', 1).fingerprint()['cpu']}).", "",
             "| target | numerics | model mIoU | " + " | ".join(f"{f} file mIoU | {f} agreement" for f in FILES) + " |",
             "|---|---|---|" + "---|---|" * len(FILES)]
    for name in args.targets.split(","):
        ctx = Context(replace(config, deploy=replace(config.deploy, target=name)), policy_dirs=["policies"])
        supernet, _ = load_trained(ctx.config, args.supernet)
        subnet = cut_subnet(supernet, ctx.policy(args.policy).genome, ctx.bn_images)
        tic = time.perf_counter()
        scores = {fmt: score_file(ctx, subnet, fmt) for fmt in FILES}
        model = evaluate_subnet(supernet, ctx.policy(args.policy).genome, ctx.bn_images, ctx.loader("val"),
                                ctx.num_classes, ctx.ignore_index)["miou"]
        line = (f"| {name} | {get_target(name).describe()} | {model:.4f} | "
                + " | ".join(f"{scores[f]['miou']:.4f} | {scores[f]['agreement']:.5f}" for f in FILES) + " |")
        lines.append(line)
        print(line, f"({time.perf_counter() - tic:.0f} s)", flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
