"""What would a quantized residual stream buy in onnxruntime? A speed-only prototype (issue 14, point 3).

Our ``--target ort`` file keeps the network's residual stream as a real number, as the model computes
it: each residual block dequantizes its projection's codes (after an integer ``Clip`` to the narrow
signed grid), adds them to the float stream, and quantizes the sum again for each reader
(``DequantizeLinear``, ``Add``, ``QuantizeLinear``, ``Clip``; onnxruntime also copies every
``DequantizeLinear`` that has several readers). ``quantize_static``'s file does the same sum with one
``QLinearAdd`` on 8-bit grids the model does not have. At 2 threads with few cores the many small nodes
cost: every parallel node is a point where one thread waits for the other.

This script rewrites a copy of our file so that each residual sum is one ``com.microsoft.QLinearAdd``
of the projection's codes and the codes of the stream as the block's first conv reads it, onto the grid
of the sum's first quantizing reader (other readers dequantize those codes). That is a different network
(the identity path quantized, sums re-rounded for their other readers): its outputs are compared with
the file's only to say how far it is from the trained model, and it is timed only to say what the model
change would buy. Timing as ``benchmarks/int8_speed.py``: our file, the prototype and ``quantize_static``'s
QDQ file in interleaved rounds of one run each, paired per round (median ratio, distribution-free 95%
interval), with onnxruntime's sessions without spinning threads and, in a separate process, sharing one
spinning pool as onnxruntime runs by default (``--spinning`` of int8_speed).

Usage: python benchmarks/quantized_stream_speed.py --checkpoint RUN [--rounds 600] [--threads 1,2] [--out F.md]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import statistics
import sys
from collections import Counter

import numpy as np
import onnx
import torch
from onnx import helper

from int8_speed import (ort_quantized, ort_session, runner, thread_counts, time_in_spinning_pool,
                        time_interleaved)
from qnas.config import load_config
from qnas.export.latency import get_backend
from qnas.pipeline import Context, export_model, load_trained
from qnas.quant import apply_target
from qnas.space import read_policy
from qnas.stats import median_interval
from qnas.train import cut_subnet


def quantized_stream(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of an ``ort`` file whose residual sums are ``QLinearAdd`` nodes (see the module text)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def made_by(name: str, op_type: str):
        node = producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def codes_after_clip(name: str) -> str:
        only = readers.get(name, [])
        return only[0].output[0] if len(only) == 1 and only[0].op_type == "Clip" else name

    def feeds_conv(quantizer) -> bool:
        """Whether a ``QuantizeLinear``'s codes (after an optional ``Clip``) go into a ``QLinearConv``."""
        return any(r.op_type == "QLinearConv" for r in readers.get(codes_after_clip(quantizer.output[0]), []))

    def first_quantizer(name: str):
        """The ``QuantizeLinear`` reading ``name`` whose codes go on to a conv (else any)."""
        quantizers = sorted((r for r in readers.get(name, []) if r.op_type == "QuantizeLinear"),
                            key=lambda q: not feeds_conv(q))
        if not quantizers:
            raise ValueError(f"nothing quantizes {name!r}: not an ort file's residual stream")
        return quantizers[0]

    stream_codes: dict[str, str] = {}
    removed, added = set(), []
    sums = [add for add in nodes if add.op_type == "Add" and made_by(add.input[0], "DequantizeLinear")]
    if not sums:
        raise ValueError("the file has no residual sum to rewrite")
    for add in sums:
        projection = made_by(add.input[0], "DequantizeLinear")
        if made_by(projection.input[0], "Clip") is None:
            raise ValueError(f"{add.name}: a residual sum whose projection has no narrow signed grid (Clip)")
        stream, into = first_quantizer(add.input[1]), first_quantizer(add.output[0])
        stream_in = stream_codes.get(add.input[1]) or codes_after_clip(stream.output[0])
        added.append(helper.make_node(
            "QLinearAdd", [projection.input[0], projection.input[1], projection.input[2], stream_in, stream.input[1],
                           stream.input[2], into.input[1], into.input[2]], [into.output[0]],
            name=f"{add.name}_qlinear", domain="com.microsoft"))
        stream_codes[add.output[0]] = codes_after_clip(into.output[0])
        removed |= {add.name, projection.name, into.name}
        others = [r for r in readers.get(add.output[0], []) if r.op_type == "QuantizeLinear" and r is not into]
        if others:
            real = f"{add.output[0]}_dequantized"
            added.append(helper.make_node("DequantizeLinear", [stream_codes[add.output[0]], into.input[1],
                                                               into.input[2]], [real], name=real))
            for reader in others:
                reader.input[0] = real
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    ordered, pending = [], [n for n in nodes if n.name not in removed] + added
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the rewritten graph has a node whose inputs nothing computes")
        for node in ready:
            available |= set(node.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    needed, live = {o.name for o in graph.output}, []
    for node in reversed(ordered):  # drop what no output reads (dequantizations only the old sums read)
        if any(o in needed for o in node.output):
            live.append(node)
            needed |= set(node.input)
    del graph.node[:]
    graph.node.extend(reversed(live))
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def node_counts(model: onnx.ModelProto) -> str:
    return ", ".join(f"{op} x{n}" for op, n in Counter(node.op_type for node in model.graph.node).most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--policy", default=None, help="policy YAML (default: the run's policy.yaml)")
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threads_to_time = thread_counts(parser, args.threads)
    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    policy = read_policy(args.policy or os.path.join(args.checkpoint, "policy.yaml"), ctx.space)
    subnet = cut_subnet(load_trained(ctx.config, args.checkpoint)[0], policy.genome, ctx.bn_images).eval()
    for_ort = cut_subnet(apply_target(load_trained(ctx.config, args.checkpoint)[0], "ort"), policy.genome,
                         ctx.bn_images).eval()
    scenes = torch.stack([ctx.loader("val").dataset[i][0] for i in range(8)])
    dh, dw = ctx.config.deploy.height, ctx.config.deploy.width
    lines = [f"# A quantized residual stream in onnxruntime (speed-only prototype), policy {policy.name}", "",
             f"Command: `python benchmarks/quantized_stream_speed.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}` "
             f"({args.rounds} interleaved rounds of one run each; median ms; paired ratios: median [95% interval], "
             f"below 1 the first faster). CPU: {get_backend('ort-cpu', 1).fingerprint()['cpu']}, "
             f"{os.cpu_count()} cores.", "",
             "| resolution | threads | onnxruntime threads | ort t | prototype | qdq | ort t / qdq | prototype / qdq | "
             "prototype / ort t | argmax agreement, prototype vs ort t (8 scenes) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    print(lines[2], flush=True)
    counts = []
    for h, w in ((dh, dw), (2 * dh, 2 * dw)):
        images = torch.nn.functional.interpolate(scenes, size=(h, w), mode="bilinear").numpy()
        ours = export_model(for_ort, "ort", h, w)
        models = {"ort t": ("ort", ours), "prototype": ("ort", quantized_stream(ours)),
                  "qdq": ("ort", ort_quantized(export_model(subnet, "onnx-fp32", h, w), images, "qdq"))}
        sessions = {name: ort_session(model, 1) for name, (_, model) in models.items()}
        logits = {name: np.concatenate([s.run(None, {"image": images[i:i + 1]})[0] for i in range(len(images))])
                  for name, s in sessions.items()}
        counts.append(f"- {h}x{w}: ort t " + node_counts(models["ort t"][1]) + "; prototype " +
                      node_counts(models["prototype"][1]))
        agreement = float((logits["prototype"].argmax(1) == logits["ort t"].argmax(1)).mean())
        x = images[:1].copy()
        for threads in threads_to_time:
            for pool in ("own pools, no spinning", "one spinning pool"):
                if pool == "one spinning pool":
                    serialized = {name: (kind, model.SerializeToString()) for name, (kind, model) in models.items()}
                    with multiprocessing.get_context("spawn").Pool(1) as workers:
                        rounds = workers.apply(time_in_spinning_pool, (serialized, threads, x, args.rounds, 1))
                else:
                    runs = {name: runner(kind, model, threads, x) for name, (kind, model) in models.items()}
                    rounds = time_interleaved(runs, args.rounds, 1)

                def ratio(a: str, b: str) -> str:
                    return median_interval([p / q for p, q in zip(rounds[a], rounds[b])]).show()

                lines.append(f"| {h}x{w} | {threads} | {pool} | " +
                             " | ".join(f"{statistics.median(rounds[n]):.2f}" for n in models) +
                             f" | {ratio('ort t', 'qdq')} | {ratio('prototype', 'qdq')} | "
                             f"{ratio('prototype', 'ort t')} | {agreement:.4f} |")
                print(lines[-1], flush=True)
    lines += ["", "Nodes as written (onnxruntime's optimizations then copy each multi-reader DequantizeLinear):", ""]
    lines += counts
    print("\n".join(counts))
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
