"""How close the ``brevitas`` export is to the evaluated model, and brevitas' own QONNX export to it.

For each policy: cut + BN-recalibrate the subnet from a trained run (as ``qnas eval`` does), build its
brevitas model (``qnas.export.to_brevitas``), run the validation split through both image by image and
report the largest |logit difference|, the share of pixels whose class agrees and both mIoUs. Then
brevitas' QONNX export of the brevitas model (``brevitas_qonnx``) runs in qonnx's node-by-node executor
on the first ``--qonnx-images`` scenes, compared with the brevitas model and with the evaluated model.

Usage: python benchmarks/brevitas_parity.py --checkpoint RUN [--config C] [--qonnx-images N] [--out F.md]
       POLICY.yaml [...]
"""

from __future__ import annotations

import argparse
import time
from itertools import islice
from pathlib import Path

import torch

from qnas.config import load_config
from qnas.data import AgreementMeter, make_loader
from qnas.export.brevitas import brevitas_qonnx, to_brevitas
from qnas.export.qonnx import qonnx_runner
from qnas.pipeline import Context, load_trained, score_file
from qnas.space import read_policy
from qnas.train import cut_subnet


def _row(policy: str, meter: AgreementMeter, compared: str) -> str:
    return (f"| {policy} | brevitas QONNX (qonnx executor) | {compared} | {meter.agreement():.5f} | "
            f"{meter.max_diff:.3g} | {meter.reference.miou():.4f} | {meter.meter.miou():.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--qonnx-images", type=int, default=5)
    parser.add_argument("--out", default=None, help="also write the table as Markdown here")
    parser.add_argument("policies", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    config = ctx.config
    supernet, _ = load_trained(config, args.checkpoint)
    classes = config.space.num_classes
    rows = ["| policy | model | compared with | argmax agreement | max abs logit diff | mIoU reference | mIoU model |",
            "|---|---|---|---|---|---|---|"]
    for path in args.policies:
        policy = read_policy(path, ctx.space)
        subnet = cut_subnet(supernet, policy.genome, ctx.bn_images).eval()
        tic = time.perf_counter()
        model = to_brevitas(subnet)
        built = time.perf_counter() - tic
        scores = score_file(ctx, subnet, "brevitas")  # the brevitas model vs the evaluated one, whole split
        vs_brevitas, vs_model = AgreementMeter(classes), AgreementMeter(classes)
        runners: dict = {}
        for images, labels in islice(make_loader(ctx.loader("val").dataset, 1, shuffle=False, seed=0),
                                     args.qonnx_images):
            hw = tuple(images.shape[-2:])
            if hw not in runners:
                runners[hw] = qonnx_runner(brevitas_qonnx(model, *hw))
            file_out = runners[hw](images.numpy())
            with torch.no_grad():
                vs_brevitas.update(file_out, model(images), labels)
                vs_model.update(file_out, subnet(images), labels)
        rows += [f"| {policy.name} | brevitas (PyTorch) | evaluated model (validation split) | {scores['agreement']:.5f} | "
                 f"{scores['max_logit_diff']:.3g} | {scores['model_miou']:.4f} | {scores['miou']:.4f} |",
                 _row(policy.name, vs_brevitas, f"brevitas model (first {args.qonnx_images} scenes)"),
                 _row(policy.name, vs_model, f"evaluated model (first {args.qonnx_images} scenes)")]
        print("\n".join(rows[-3:]) + f"\n(to_brevitas: {built:.2f} s)", flush=True)
    text = (f"`python benchmarks/brevitas_parity.py --checkpoint {args.checkpoint} --qonnx-images {args.qonnx_images} "
            f"{' '.join(args.policies)}` (config `{args.config}`, validation split at "
            f"{config.data.eval_size[0]}x{config.data.eval_size[1]}):\n\n" + "\n".join(rows) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
