"""Issue 5 measurement: does the exported ``ort`` file compute what was evaluated, and how fast is it?

For each policy: cut + BN-recalibrate the subnet from a trained run (as ``qnas eval`` does), export
it with ``--format ort`` and ``onnx-fp32``, run the validation split through PyTorch and both ONNX
files, and report per-pixel argmax agreement, max |logit difference|, mIoU of each, and the median
onnxruntime latency of INT8 vs float32 at the deployment resolution (same run, same threads).

Usage: python benchmarks/export_parity.py --checkpoint runs/sn POLICY.yaml [POLICY.yaml ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import torch

from qnas.cli.export_commands import export_policy
from qnas.cli.runs import bn_images, load_trained, train_dataset, val_loader
from qnas.config import load_config
from qnas.data import ConfusionMeter
from qnas.export.latency import get_backend
from qnas.space import SearchSpace, read_policy
from qnas.train import cut_subnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("policies", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(args.config)
    space = SearchSpace(config.space)
    supernet, _ = load_trained(config, args.checkpoint)
    bn = bn_images(config, train_dataset(config))
    h, w = config.data.eval_size
    backend = get_backend("ort-cpu", args.threads)
    for path in args.policies:
        policy = read_policy(path, space)
        subnet = cut_subnet(supernet, policy.genome, bn)
        int8 = onnx.load_from_string(export_policy(config, supernet, policy.genome, "ort", h, w, bn))
        session = backend.session(int8)
        meters = {name: ConfusionMeter(config.space.num_classes) for name in ("pytorch", "ort")}
        agree, total, max_diff = 0, 0, 0.0
        for images, labels in val_loader(config, batch_size=1):
            with torch.no_grad():
                ref = subnet(images).numpy()
            out = session.run(None, {"image": images.numpy()})[0]
            meters["pytorch"].update(torch.from_numpy(ref.argmax(1)), labels)
            meters["ort"].update(torch.from_numpy(out.argmax(1)), labels)
            agree += int((ref.argmax(1) == out.argmax(1)).sum())
            total += ref.shape[0] * ref.shape[2] * ref.shape[3]
            max_diff = max(max_diff, float(np.abs(ref - out).max()))
        dh, dw = config.deploy.height, config.deploy.width
        deploy_int8 = onnx.load_from_string(export_policy(config, supernet, policy.genome, "ort", dh, dw, bn))
        fp32 = onnx.load_from_string(export_policy(config, supernet, policy.genome, "onnx-fp32", dh, dw, bn))
        t8 = backend.measure(deploy_int8, 10, args.repeats).median_ms
        t32 = backend.measure(fp32, 10, args.repeats).median_ms
        print(f"{policy.name}: argmax agreement {agree / total:.5f}, max |diff| {max_diff:.4g}, "
              f"mIoU pytorch {meters['pytorch'].miou():.4f} vs ort {meters['ort'].miou():.4f}; "
              f"latency at {dh}x{dw}, {args.threads} thread(s): int8 {t8:.3f} ms, fp32 {t32:.3f} ms "
              f"(fp32/int8 {t32 / t8:.2f}x)")
        del subnet


if __name__ == "__main__":
    main()
