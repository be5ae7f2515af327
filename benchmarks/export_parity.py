"""Issue 5 measurement: do the exported files compute what was evaluated, and how fast is INT8?

For each policy: cut + BN-recalibrate the subnet from a trained run (as ``qnas eval`` does), export
it as ``ort``, ``trt``, ``openvino`` and ``qonnx``, run the validation split through PyTorch and the
files, and report per-pixel argmax agreement, max |logit difference| and mIoU of each. ``openvino``
runs in OpenVINO's CPU plugin (with the share of its convs that ran in int8, from OpenVINO's
runtime graph) and, as written, in onnxruntime without Q/DQ fusion. ``trt`` is compared
with the model widened to int8 (``widen_for_int8``), whose own mIoU shows what widening costs.
``qonnx`` runs in qonnx's node-by-node executor, so only the first ``--qonnx-images`` scenes.
Finally the median onnxruntime latency of the ``ort`` file vs the float32 twin at the deployment
resolution (same run, same threads).

Usage: python benchmarks/export_parity.py --checkpoint RUN [--out results.md] POLICY.yaml [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

from qnas.config import load_config
from qnas.data import AgreementMeter, ConfusionMeter, make_loader
from qnas.export.latency import get_backend
from qnas.export.openvino import compile_openvino, int8_coverage
from qnas.export.qonnx import qonnx_runner
from qnas.export.trt import widen_for_int8
from qnas.pipeline import Context, export_model, load_trained
from qnas.space import read_policy
from qnas.train import cut_subnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--qonnx-images", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the table as Markdown here")
    parser.add_argument("policies", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    config, space = ctx.config, ctx.space
    supernet, _ = load_trained(config, args.checkpoint)
    bn = ctx.bn_images
    h, w = config.data.eval_size
    classes = config.space.num_classes
    backend = get_backend("ort-cpu", args.threads)
    rows = ["| policy | file | compared with | argmax agreement | max abs diff | mIoU PyTorch | mIoU file |",
            "|---|---|---|---|---|---|---|"]
    timings = []
    for path in args.policies:
        policy = read_policy(path, space)
        subnet = cut_subnet(supernet, policy.genome, bn)
        widened = widen_for_int8(subnet).eval()

        def export(fmt: str, height: int = h, width: int = w, subnet=subnet) -> onnx.ModelProto:
            return export_model(subnet, fmt, height, width)

        ort_run, trt_run = backend.session(export("ort")), backend.session(export("trt"))
        ov_model = export("openvino")
        coverage = int8_coverage(ov_model)
        ov_run = compile_openvino(ov_model, 2).create_infer_request()
        as_written = ort.SessionOptions()
        as_written.add_session_config_entry("session.disable_quant_qdq", "1")
        ov_written = ort.InferenceSession(ov_model.SerializeToString(), as_written, providers=["CPUExecutionProvider"])
        qonnx_run = qonnx_runner(export("qonnx"))
        ref_meter, wide_meter = ConfusionMeter(classes), ConfusionMeter(classes)
        files = {name: AgreementMeter(classes) for name in ("ort", "trt", "openvino", "openvino as written", "qonnx")}
        qonnx_ref = ConfusionMeter(classes)
        for i, (images, labels) in enumerate(make_loader(ctx.loader("val").dataset, 1, shuffle=False, seed=0)):
            with torch.no_grad():
                ref, wide = subnet(images).numpy(), widened(images).numpy()
            ref_meter.update(torch.from_numpy(ref.argmax(1)), labels)
            wide_meter.update(torch.from_numpy(wide.argmax(1)), labels)
            x = images.numpy()
            files["ort"].update(ort_run.run(None, {"image": x})[0], ref, labels)
            files["trt"].update(trt_run.run(None, {"image": x})[0], wide, labels)
            files["openvino"].update(ov_run.infer({0: x})[0], ref, labels)
            files["openvino as written"].update(ov_written.run(None, {"image": x})[0], ref, labels)
            if i < args.qonnx_images:
                files["qonnx"].update(qonnx_run(x), ref, labels)
                qonnx_ref.update(torch.from_numpy(ref.argmax(1)), labels)
        for name, compared, base in (("ort", "model", ref_meter), ("trt", "widened model", wide_meter),
                                     ("openvino", f"model (OpenVINO; {len(coverage.int8)}/{coverage.total} convs int8)",
                                      ref_meter),
                                     ("openvino as written", "model (onnxruntime, no Q/DQ fusion)", ref_meter),
                                     ("qonnx", f"model (first {args.qonnx_images} scenes)", qonnx_ref)):
            a = files[name]
            rows.append(f"| {policy.name} | {name} | {compared} | {a.agreement():.5f} | {a.max_diff:.3g} | "
                        f"{base.miou():.4f} | {a.meter.miou():.4f} |")
        rows.append(f"| {policy.name} | (widening itself) | model | | | {ref_meter.miou():.4f} | "
                    f"{wide_meter.miou():.4f} (widened, PyTorch) |")
        dh, dw = config.deploy.height, config.deploy.width
        deploy_int8, fp32 = export("ort", dh, dw), export("onnx-fp32", dh, dw)
        t8 = backend.measure(deploy_int8, 10, args.repeats).median_ms
        t32 = backend.measure(fp32, 10, args.repeats).median_ms
        timings.append(f"| {policy.name} | {t8:.3f} | {t32:.3f} | {t32 / t8:.2f}x |")
        print("\n".join(rows[-6:]), flush=True)
    text = "\n".join(rows) + (f"\n\nonnxruntime latency at {config.deploy.height}x{config.deploy.width}, "
                              f"{args.threads} thread(s), median of {args.repeats}:\n\n"
                              "| policy | INT8 ms | FP32 ms | FP32 / INT8 |\n|---|---|---|---|\n"
                              + "\n".join(timings) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
