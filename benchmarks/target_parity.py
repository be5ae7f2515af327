"""What each target's numerics buy: the files of one network cut from a supernet, scored in their runtimes.

For every ``--target``, the policy is cut from the supernet with that target's numerics (``deploy.target``),
and the ``ort``, ``openvino`` and ``trt`` files of it are run image by image on the validation split in
their runtimes (onnxruntime; OpenVINO's CPU plugin; onnxruntime for the TensorRT Q/DQ file), with their
mIoU and the share of pixels whose class agrees with the model (``qnas.pipeline.score_file``).

``--reference-scenes N`` also runs the ``trt`` file of the ``trt`` target in ONNX's own reference executor
(``onnx.reference``, on a copy converted to opset 19, where its per-axis DequantizeLinear exists) for the
first N scenes: agreement with the model and the largest difference from onnxruntime's output.

Usage: python benchmarks/target_parity.py --supernet RUN [--policy P] [--targets qonnx,ort,trt,openvino]
       [--reference-scenes N] [--out F.md]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from qnas.config import load_config
from qnas.export.latency import get_backend
from qnas.export.profiles import get_profile
from qnas.pipeline import Context, load_trained, score_file
from qnas.quant.targets import get_target
from qnas.train import cut_subnet

FILES = ("ort", "openvino", "trt")


def reference_parity(config, supernet_run: str, policy: str, scenes: int) -> str:
    """The trt target's trt file in onnx.reference against the model and against onnxruntime."""
    import numpy as np
    from onnx import version_converter
    from onnx.reference import ReferenceEvaluator

    from qnas.export.profiles import onnxruntime_runner

    ctx = Context(replace(config, deploy=replace(config.deploy, target="trt")), policy_dirs=["policies"])
    supernet, _ = load_trained(ctx.config, supernet_run)
    subnet = cut_subnet(supernet, ctx.policy(policy).genome, ctx.bn_images).eval()
    dataset = ctx.loader("val").dataset
    models = {}
    agree = total = 0
    largest = 0.0
    for i in range(scenes):
        x = dataset[i][0][None]
        hw = tuple(x.shape[-2:])
        if hw not in models:
            model = get_profile("trt").export(subnet, *hw)
            models[hw] = (ReferenceEvaluator(version_converter.convert_version(model, 19)), onnxruntime_runner(model))
        reference, runtime = models[hw]
        got = reference.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            want = subnet(x).numpy()
        agree += int((got.argmax(1) == want.argmax(1)).sum())
        total += want[0, 0].size
        largest = max(largest, float(np.abs(got - runtime(x.numpy())).max()))
    return (f"onnx.reference, `trt` target's `trt` file, first {scenes} validation scenes: agreement with the model "
            f"{agree / total:.5f}, largest |difference| from onnxruntime's output {largest:.2e}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--policy", default="uniform_w8a8")
    parser.add_argument("--targets", default="qonnx,ort,trt,openvino")
    parser.add_argument("--reference-scenes", type=int, default=0)
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
        model = scores["ort"]["model_miou"]
        line = (f"| {name} | {get_target(name).describe()} | {model:.4f} | "
                + " | ".join(f"{scores[f]['miou']:.4f} | {scores[f]['agreement']:.5f}" for f in FILES) + " |")
        lines.append(line)
        print(line, f"({time.perf_counter() - tic:.0f} s)", flush=True)
    if args.reference_scenes:
        lines += ["", reference_parity(config, args.supernet, args.policy, args.reference_scenes)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
