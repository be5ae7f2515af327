"""Is INT8 really faster? Our files against each runtime's float twin and onnxruntime's own quantizer (issue 14).

One trained policy, one run, interleaved rounds (each round times every variant once, in turn;
each variant's figure is the median over rounds of the round's median), at the deployment
resolution and at 4x its pixels, with 1 and 2 threads:

- ``ort``: our integer graph (``qnas export --format ort``) in onnxruntime, of the network as searched
  (8-bit weights: a conv whose int16 pair sums could saturate on CPUs without VNNI keeps uint8
  weights, the slower u8 x u8 kernel); ``ort t``: the same network with the ``ort`` target's
  numerics (``--target ort``: weights at most 7 bits, so every conv has int8 weights);
- ``ort qdq`` / ``ort qop``: onnxruntime's ``quantize_static`` of the float twin (QDQ and
  QOperator formats, per-channel, U8S8, MinMax calibration on 8 validation scenes resized to the
  resolution): what a user gets from onnxruntime's tool in one call;
- ``ort fp32``: the float twin in onnxruntime;
- ``ort t*``: the ``ort t`` file in a session with ``session.disable_quant_qdq=1``. The file has no
  Q/DQ pairs for onnxruntime to fuse (its convs are already ``QLinearConv``); onnxruntime's QDQ passes
  only give each consumer of a ``DequantizeLinear`` its own copy (``EnsureUniqueDQForNodeUnit``), so
  the float residual stream is dequantized once per reader. Same outputs, checked;
- ``ov``: our ``openvino`` file in OpenVINO's CPU plugin; ``ov t``: with the ``openvino`` target's
  numerics (``--target openvino``); ``ov fp32``: the float twin there (``INFERENCE_PRECISION_HINT=f32``).

Ours against ``quantize_static`` is also given paired: each round's ratio of the two round medians,
the median of those ratios and its distribution-free 95% interval (``qnas.stats.median_interval``,
which takes the rounds as independent; successive rounds on a drifting machine are not quite). The
verdict: "faster" or "slower beyond noise" when the interval excludes 1, else "no difference detected"
(which bounds the difference by the interval, no more). Each round starts one variant later than the
round before, so no variant always runs right after the same other one.

``--profile`` adds, per variant at the deployment resolution and 1 thread, the time per operator
type from each runtime's own profiler (onnxruntime's JSON trace, OpenVINO's performance counters); the
profiled onnxruntime sessions have their own pools without spinning, also with ``--spinning``.

Usage: python benchmarks/int8_speed.py --checkpoint RUN [--policy P] [--out FILE.md] [--profile] [--spinning]
[--only 'ort t,ort qdq'] [--rounds N] [--per-round N] [--threads 1,2]
(RUN: a trained run, e.g. a ``qnas compare`` run folder, whose ``policy.yaml`` is the default policy).
By default onnxruntime sessions run without spinning threads (``session.intra_op.allow_spinning=0``), so
that one runtime's idle pool does not slow the other's timed run. That is not onnxruntime's default:
a session's workers spin between parallel sections, which a graph of many small nodes needs more than
one of few. ``--spinning`` times onnxruntime as it runs by default in a program with one model: the
timed sessions share one spinning pool (onnxruntime's global thread pool, in a fresh process for each
resolution and thread count, since the pool is fixed before a process's first session), so no session's idle workers
take another's cores; the OpenVINO variants, whose threads would compete with those spinning workers,
are left out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import torch

from qnas.config import load_config
from qnas.export.latency import get_backend
from qnas.export.openvino import compile_openvino
from qnas.pipeline import Context, export_model, load_trained
from qnas.quant import apply_target
from qnas.space import read_policy
from qnas.stats import median_interval
from qnas.train import cut_subnet


def ort_session(model: onnx.ModelProto, threads: int, profile_dir: str | None = None, qdq_passes: bool = True,
                shared: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if shared:  # the process's one pool (time_in_spinning_pool), spinning as onnxruntime does by default
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        # no busy-waiting between runs: interleaved with other sessions' pools on few cores, a spinning pool
        # steals the cores the next variant needs (2 threads on this 2-core machine ran 2x slower)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not qdq_passes:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ort_quantized(fp32: onnx.ModelProto, images: np.ndarray, fmt: str) -> onnx.ModelProto:
    """onnxruntime's quantize_static of the float twin: per-channel, U8S8, MinMax on ``images``."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": images[i:i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (os.path.join(tmp, name) for name in ("fp32.onnx", "pre.onnx", "q.onnx"))
        onnx.save(fp32, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(dst)


def runner(kind: str, model: onnx.ModelProto, threads: int, x: np.ndarray, shared: bool = False):
    if kind in ("ort", "ort*"):
        session = ort_session(model, threads, qdq_passes=kind == "ort", shared=shared)
        return lambda: session.run(None, {"image": x})
    request = compile_openvino(model, threads).create_infer_request()
    return lambda: request.infer({0: x})


def thread_counts(parser: argparse.ArgumentParser, text: str) -> list[int]:
    """``--threads``: positive integers separated by commas (a usage error otherwise)."""
    counts = [int(t) for t in text.split(",") if t.strip().isdigit() and int(t) > 0]
    if len(counts) != len(text.split(",")):
        parser.error(f"--threads takes positive integers separated by commas, got {text!r}")
    return counts


def check_qdq_passes(runs: dict) -> None:
    if {"ort t", "ort t*"} <= set(runs) and not np.array_equal(runs["ort t"]()[0], runs["ort t*"]()[0]):
        raise SystemExit("onnxruntime's QDQ passes changed the ort file's output")


def time_in_spinning_pool(models: dict[str, tuple[str, bytes]], threads: int, x: np.ndarray, rounds: int,
                          per_round: int) -> dict[str, list[float]]:
    """``time_interleaved`` of onnxruntime variants that share one spinning pool of ``threads`` threads.
    Runs in a fresh process (``--spinning``): onnxruntime fixes its global pool before the first session."""
    from onnxruntime.capi import _pybind_state

    _pybind_state.set_global_thread_pool_sizes(threads, 1)
    runs = {name: runner(kind, onnx.load_from_string(model), threads, x, shared=True)
            for name, (kind, model) in models.items()}
    check_qdq_passes(runs)
    return time_interleaved(runs, rounds, per_round)


def time_interleaved(runs: dict, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Each variant's median time (ms) in each round; a round times every variant ``per_round`` times, in turn,
    starting one variant later than the round before (no variant always follows the same one)."""
    for run in runs.values():  # warm up
        for _ in range(3):
            run()
    medians = defaultdict(list)
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run = runs[name]
            times = []
            for _ in range(per_round):
                tic = time.perf_counter()
                run()
                times.append((time.perf_counter() - tic) * 1000.0)
            medians[name].append(statistics.median(times))
    return dict(medians)


def ort_profile(model: onnx.ModelProto, x: np.ndarray, runs: int = 20, qdq_passes: bool = True) -> dict[str, float]:
    """ms per run by operator type (``OP xN``: N nodes of that type), from onnxruntime's own profiler."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(model, 1, tmp, qdq_passes)
        for _ in range(runs):
            session.run(None, {"image": x})
        trace = json.loads(Path(session.end_profiling()).read_text())
    totals, nodes = defaultdict(float), defaultdict(set)
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1000.0 / runs
            nodes[event["args"]["op_name"]].add(event["name"])
    return {f"{op} x{len(nodes[op])}": ms for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])}


def ov_profile(model: onnx.ModelProto, x: np.ndarray, runs: int = 20) -> dict[str, float]:
    """ms per run by (layer type, kernel), from OpenVINO's performance counters."""
    request = compile_openvino(model, 1, profile=True).create_infer_request()
    totals = defaultdict(float)
    for _ in range(runs):
        request.infer({0: x})
        for p in request.profiling_info:
            if p.status.name != "NOT_RUN":
                totals[f"{p.node_type} ({p.exec_type})"] += p.real_time.total_seconds() * 1000.0 / runs
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--policy", default=None, help="policy YAML (default: the run's policy.yaml)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--spinning", action="store_true",
                        help="onnxruntime as by default: sessions share one spinning pool; no OpenVINO variants")
    parser.add_argument("--only", default=None,
                        help="comma-separated variants to time (default all), e.g. 'ort t,ort t*,ort qdq': fewer "
                             "variants per round put the paired ones closer in time")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threads_to_time = thread_counts(parser, args.threads)
    variants = ["ort", "ort t", "ort t*", "ort qdq", "ort qop", "ort fp32", "ov", "ov t", "ov fp32"]
    only = variants if args.only is None else [name.strip() for name in args.only.split(",")]
    if not {"ort t", "ort qdq"} <= set(only) or not set(only) <= set(variants):
        parser.error(f"--only takes names from {', '.join(variants)}, including 'ort t' and 'ort qdq'; "
                     f"got {args.only!r}")
    if args.spinning and any(name.startswith("ov") for name in only) and args.only is not None:
        parser.error("--spinning leaves the OpenVINO variants out; drop them from --only")
    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    supernet, _ = load_trained(ctx.config, args.checkpoint)
    policy = read_policy(args.policy or os.path.join(args.checkpoint, "policy.yaml"), ctx.space)
    subnet = cut_subnet(supernet, policy.genome, ctx.bn_images).eval()
    for_target = {}
    for name in ("ort", "openvino"):
        limited = apply_target(load_trained(ctx.config, args.checkpoint)[0], name)
        for_target[name] = cut_subnet(limited, policy.genome, ctx.bn_images).eval()
    dh, dw = ctx.config.deploy.height, ctx.config.deploy.width
    scenes = torch.stack([ctx.loader("val").dataset[i][0] for i in range(8)])
    lines = [f"# INT8 vs float, policy {policy.name}", "",
             f"Command: `python benchmarks/int8_speed.py {' '.join(shlex.quote(arg) for arg in sys.argv[1:])}` "
             f"({args.rounds} interleaved rounds x {args.per_round} runs, median of round medians, ms; onnxruntime "
             f"{'in one shared spinning pool, as by default' if args.spinning else 'without spinning threads'}). "
             f"CPU: {get_backend('ort-cpu', 1).fingerprint()['cpu']}, {os.cpu_count()} cores.", "",
             "| resolution | threads | ort (ours) | ort t (ours, --target ort) | ort t* (no QDQ passes) | "
             "ort qdq (quantize_static) | ort qop (quantize_static) | ort fp32 | ov (ours) | "
             "ov t (ours, --target openvino) | ov fp32 | ort fp32 / ours | ort fp32 / ort t | ort fp32 / qdq | "
             "qdq / ort t | ov fp32 / ours | ov fp32 / ov t |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    paired = ["", "Ours against `quantize_static`, paired by round (median of the per-round time ratios, "
              "distribution-free 95% interval; below 1: ours faster):", "",
              "| resolution | threads | ort t / qdq | ort t / qop | ort t* / qdq | ort t* / qop | ort t* / ort t | "
              "verdict (ort t / qdq) |",
              "|---|---|---|---|---|---|---|---|"]
    profiles = {}
    for h, w in ((dh, dw), (2 * dh, 2 * dw)):
        fp32 = export_model(subnet, "onnx-fp32", h, w)
        images = torch.nn.functional.interpolate(scenes, size=(h, w), mode="bilinear").numpy()
        builders = {"ort": ("ort", lambda: export_model(subnet, "ort", h, w)),
                    "ort t": ("ort", lambda: export_model(for_target["ort"], "ort", h, w)),
                    "ort t*": ("ort*", None),  # the ort t file, another session
                    "ort qdq": ("ort", lambda: ort_quantized(fp32, images, "qdq")),
                    "ort qop": ("ort", lambda: ort_quantized(fp32, images, "qop")),
                    "ort fp32": ("ort", lambda: fp32),
                    "ov": ("ov", lambda: export_model(subnet, "openvino", h, w)),
                    "ov t": ("ov", lambda: export_model(for_target["openvino"], "openvino", h, w)),
                    "ov fp32": ("ov", lambda: fp32)}
        names = list(builders)  # the table's columns, also where --spinning or --only leave some out
        models = {name: (kind, build() if build else None) for name, (kind, build) in builders.items()
                  if name in only and not (args.spinning and kind == "ov")}
        if "ort t*" in models:
            models["ort t*"] = ("ort*", models["ort t"][1])
        x = images[:1].copy()
        for threads in threads_to_time:
            if args.spinning:
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    serialized = {name: (kind, model.SerializeToString()) for name, (kind, model) in models.items()}
                    rounds = pool.apply(time_in_spinning_pool, (serialized, threads, x, args.rounds, args.per_round))
            else:
                runs = {name: runner(kind, model, threads, x) for name, (kind, model) in models.items()}
                check_qdq_passes(runs)
                rounds = time_interleaved(runs, args.rounds, args.per_round)
            t = {name: statistics.median(values) for name, values in rounds.items()}
            pairs = [(a, f"ort {b}") for a in ("ort t", "ort t*") for b in ("qdq", "qop")] + [("ort t*", "ort t")]
            ratios = {f"{a} / {b}": (median_interval([x_ms / y_ms for x_ms, y_ms in zip(rounds[a], rounds[b])])
                                     if a in rounds and b in rounds else None) for a, b in pairs}
            main_ratio = ratios["ort t / ort qdq"]
            verdict = ("ours faster beyond noise" if main_ratio.high < 1.0 else
                       "ours slower beyond noise" if main_ratio.low > 1.0 else "no difference detected")
            shown = " | ".join(r.show() if r else "-" for r in ratios.values())
            paired.append(f"| {h}x{w} | {threads} | {shown} | {verdict} |")
            print(paired[-1], flush=True)

            def speedup(a: str, b: str) -> str:
                return f"{t[a] / t[b]:.2f}x" if a in t and b in t else "-"

            row = (f"| {h}x{w} | {threads} | " + " | ".join(f"{t[name]:.2f}" if name in t else "-" for name in names)
                   + " | " + " | ".join(speedup(a, b) for a, b in (("ort fp32", "ort"), ("ort fp32", "ort t"),
                                                                  ("ort fp32", "ort qdq"), ("ort qdq", "ort t"),
                                                                  ("ov fp32", "ov"), ("ov fp32", "ov t"))) + " |")
            lines.append(row)
            print(row, flush=True)
        if args.profile and (h, w) == (dh, dw):
            for name, (kind, model) in models.items():
                profiles[name] = (ov_profile(model, x) if kind == "ov" else
                                  ort_profile(model, x, qdq_passes=kind == "ort"))
    lines += paired
    if profiles:
        lines += ["", f"Time per operator type at {dh}x{dw}, 1 thread (ms per run; each runtime's own profiler):", ""]
        for name, totals in profiles.items():
            top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(totals.items())[:8])
            lines.append(f"- **{name}** (total {sum(totals.values()):.2f}): {top}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
