"""Where NVIDIA's ONNX quantizer puts Q/DQ nodes, next to where the ``trt`` export profile puts them.

Cuts a policy's subnet from a trained run (as ``qnas eval`` does) and writes it twice: as the float
twin (``onnx-fp32``), which ModelOpt (``modelopt.onnx.quantization.quantize``, int8, per-channel
weights, ``--calibration-method`` on the first ``--calib-images`` validation scenes, onnxruntime's CPU
execution provider) then quantizes, and as our ``trt`` profile. Both graphs are then compared per
operator type: how many nodes, how many read their activation inputs through a DequantizeLinear, how
many have their output quantized (directly or through Relu, Clip, Resize or Concat), the weight and activation
quantization parameters, and each residual Add, Resize and Concat node by node. Prints Markdown.

ModelOpt is imported lazily. Its ``[onnx]`` extra pins onnx~=1.21 and onnxruntime-gpu, which would
replace the project's onnx and CPU onnxruntime, so run this from a separate virtual environment that
sees the project's packages::

    python -m venv --system-site-packages /path/to/venv
    /path/to/venv/bin/pip install "nvidia-modelopt[onnx]"
    PYTHONPATH=. /path/to/venv/bin/python benchmarks/modelopt_placement.py \\
        --checkpoint runs/digits-i13/compare/runs/uniform_w8a8 [--policy P.yaml] [--keep DIR] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

QDQ = ("QuantizeLinear", "DequantizeLinear")
PASS_THROUGH = ("Relu", "Clip", "Resize", "Concat")  # ops an output may pass through before its Q (at most two)


@dataclass
class Row:
    nodes: int = 0
    inputs: Counter = field(default_factory=Counter)  # activation inputs from DQ: all / some / none
    weights_dq: int = 0
    outputs: Counter = field(default_factory=Counter)  # route to a QuantizeLinear ("direct", "Relu", ...) or "none"


class GraphView:
    """Producers, consumers and constants of one ONNX graph; the size arithmetic (Shape → ... → Resize
    sizes) is told apart from tensor operators so that a shape Concat is not counted as a feature Concat."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model, g = model, model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in g.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.init = {t.name: t for t in g.initializer}
        self.constant = set(self.init) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
        self.shape_nodes: set[str] = set()
        for n in g.node:  # nodes are topologically sorted
            ins = [i for i in n.input if i]
            from_shape = [i for i in ins if i in self.shape_nodes]
            if n.op_type == "Shape" or (n.op_type not in QDQ and from_shape
                                        and all(i in self.constant or i in from_shape for i in ins)):
                self.shape_nodes.add(n.output[0])

    def is_shape(self, node: onnx.NodeProto) -> bool:
        return node.output[0] in self.shape_nodes

    def op(self, node: onnx.NodeProto) -> str:
        return f"{node.op_type} (size arithmetic)" if self.is_shape(node) else node.op_type

    def activation_inputs(self, node: onnx.NodeProto) -> list[str]:
        if node.op_type in ("Conv", "Resize", "Clip", "Shape"):
            return [node.input[0]]
        return [i for i in node.input if i and i not in self.constant and i not in self.shape_nodes]

    def from_dq(self, name: str) -> bool:
        p = self.producer.get(name)
        return p is not None and p.op_type == "DequantizeLinear"

    def output_route(self, node: onnx.NodeProto) -> str:
        """How ``node``'s output reaches a QuantizeLinear: directly, through at most two ``PASS_THROUGH``
        ops (``"Relu→Clip"``), or not at all (``"none"``)."""
        return self.tensor_route(node.output[0])

    def tensor_route(self, tensor: str) -> str:
        frontier = [(tensor, ())]
        while frontier:
            tensor, path = frontier.pop(0)
            for c in self.consumers.get(tensor, []):
                if c.op_type == "QuantizeLinear":
                    return "→".join(path) or "direct"
                if c.op_type in PASS_THROUGH and len(path) < 2:
                    frontier.append((c.output[0], (*path, c.op_type)))
        return "none"

    def source(self, name: str) -> str:
        """Short description of what produces ``name`` (for the node-by-node tables)."""
        p = self.producer.get(name)
        if p is None:
            return "graph input" if name not in self.init else "initializer"
        if p.op_type == "DequantizeLinear":
            q = self.producer.get(p.input[0])
            return "DQ(Q)" if q is not None and q.op_type == "QuantizeLinear" else "DQ"
        return p.op_type

    def opset(self) -> int:
        return next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))

    def value(self, name: str) -> np.ndarray | None:
        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        p = self.producer.get(name)
        if p is not None and p.op_type == "Constant":
            return numpy_helper.to_array(p.attribute[0].t)
        return None


def placement(view: GraphView) -> dict[str, Row]:
    rows: dict[str, Row] = defaultdict(Row)
    for n in view.model.graph.node:
        if n.op_type in QDQ or n.op_type in ("Constant", "Identity"):
            continue
        row = rows[view.op(n)]
        row.nodes += 1
        acts = view.activation_inputs(n)
        dq = sum(view.from_dq(i) for i in acts)
        row.inputs["all" if acts and dq == len(acts) else "some" if dq else "none"] += 1
        if n.op_type == "Conv" and view.from_dq(n.input[1]):
            row.weights_dq += 1
        row.outputs["none" if view.is_shape(n) else view.output_route(n)] += 1
    return rows


def _dtype(view: GraphView, name: str) -> str:
    value = view.value(name)
    return "?" if value is None else str(value.dtype)


def fmt(counter: Counter) -> str:
    return ", ".join(f"{v} × {k}" for k, v in sorted(counter.items())) or "none"


def quant_params(view: GraphView) -> dict[str, str]:
    """Weight and activation Q/DQ parameters of one graph."""
    g = view.model.graph
    weight_dq = [view.producer[n.input[1]] for n in g.node if n.op_type == "Conv" and view.from_dq(n.input[1])]
    storage, axes, wz = Counter(), Counter(), Counter()
    for d in weight_dq:
        src = view.producer.get(d.input[0])
        if src is None:
            storage[f"{_dtype(view, d.input[0])} initializer → DQ"] += 1
        elif src.op_type == "QuantizeLinear":
            storage[f"{_dtype(view, src.input[0])} initializer → Q → DQ"] += 1
        else:
            storage[f"{src.op_type} → DQ"] += 1
        axis = next((a.i for a in d.attribute if a.name == "axis"), 1)
        scale = view.value(d.input[1])
        axes[f"axis {axis}, {'per-channel' if scale is not None and scale.size > 1 else 'per-tensor'}"] += 1
        zp = view.value(d.input[2]) if len(d.input) > 2 and d.input[2] else None
        wz[f"{_dtype(view, d.input[2]) if zp is not None else 'none'} zp "
           f"{'0' if zp is None or not zp.any() else 'non-zero'}"] += 1
    act_q = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in view.constant]
    az, ascale = Counter(), Counter()
    for q in act_q:
        zp = view.value(q.input[2]) if len(q.input) > 2 and q.input[2] else None
        az[f"{_dtype(view, q.input[2]) if zp is not None else 'uint8 (default)'} zp "
           f"{sorted(set(np.atleast_1d(zp).tolist())) if zp is not None else [0]}"] += 1
        scale = view.value(q.input[1])
        ascale["per-tensor" if scale is not None and scale.size == 1 else "per-channel"] += 1
    only_dq = sum(all(c.op_type == "DequantizeLinear" for c in view.consumers[q.output[0]]) for q in act_q)
    image_route = view.tensor_route(g.input[0].name)
    weight_names = {d.output[0] for d in weight_dq}
    act_dq = [d for d in g.node if d.op_type == "DequantizeLinear" and d.input[0] not in view.constant
              and d.output[0] not in weight_names]
    requant = 0  # Q nodes that re-quantize a dequantized tensor onto another grid, directly or after a Clip
    for q in act_q:
        src = view.producer.get(q.input[0])
        if src is not None and src.op_type == "Clip":
            src = view.producer.get(src.input[0])
        requant += src is not None and src.op_type == "DequantizeLinear"
    shared = sum(len([c for c in view.consumers[d.output[0]] if c.op_type != "Shape"]) > 1 for d in act_dq)
    out = g.output[0].name
    last = view.producer[out]
    while last.op_type == "Identity":
        last = view.producer[last.input[0]]
    clips = Counter(view.source(c.input[0]) for c in g.node if c.op_type == "Clip")
    return {
        "opset": str(view.opset()),
        "QuantizeLinear / DequantizeLinear nodes": f"{sum(n.op_type == 'QuantizeLinear' for n in g.node)} / "
                                                   f"{sum(n.op_type == 'DequantizeLinear' for n in g.node)}",
        "conv weights: storage": fmt(storage),
        "conv weights: scales": fmt(axes),
        "conv weights: zero points": fmt(wz),
        "conv bias": fmt(Counter(("float initializer" if len(n.input) > 2 and n.input[2] in view.init
                                  else "none") for n in g.node if n.op_type == "Conv")),
        "activation Q: count, zero point": f"{len(act_q)}: {fmt(az)}",
        "activation Q: scales": fmt(ascale),
        "activation Q feeding only DQs": f"{only_dq} of {len(act_q)}",
        "activation DQ read by more than one operator": f"{shared} of {len(act_dq)}",
        "requantizations (DQ → [Clip →] Q)": str(requant),
        "network input quantized": "no" if image_route == "none" else f"yes ({image_route})",
        "Clip nodes (by input)": fmt(clips),
        f"output `{out}` from": f"{view.source(last.input[0])} → {last.op_type}",
    }


def node_details(view: GraphView, op_type: str) -> list[str]:
    rows = []
    for n in view.model.graph.node:
        if n.op_type != op_type or view.is_shape(n):
            continue
        acts = view.activation_inputs(n)
        rows.append(f"{' + '.join(view.source(i) for i in acts)} → {view.output_route(n)}")
    return rows


def _routes(tables: Iterable[dict[str, Row]]) -> list[str]:
    seen = {route for table in tables for row in table.values() for route in row.outputs}
    return ["direct", *sorted(seen - {"direct", "none"}, key=lambda r: (r.count("→"), r)), "none"]


def _cells(counter: Counter, keys: Iterable[str]) -> str:
    return " / ".join(str(counter.get(k, 0)) for k in keys)


def report(models: dict[str, onnx.ModelProto]) -> str:
    views = {name: GraphView(m) for name, m in models.items()}
    tables = {name: placement(v) for name, v in views.items()}
    order = ["Conv", "Relu", "Clip", "Add", "Resize", "Concat"]
    ops = order + sorted({op for t in tables.values() for op in t} - set(order))
    routes = _routes(tables.values())
    lines = ["| op type | file | nodes | activation inputs from DQ: all / some / none | weight from DQ | "
             "output reaches a Q: " + " / ".join(routes) + " |", "|---|---|---|---|---|---|"]
    for op in ops:
        for name, table in tables.items():
            row = table.get(op)
            if row is None:
                lines.append(f"| {op} | {name} | 0 | | | |")
                continue
            weights = f"{row.weights_dq} of {row.nodes}" if op == "Conv" else ""
            lines.append(f"| {op} | {name} | {row.nodes} | {_cells(row.inputs, ('all', 'some', 'none'))} | "
                         f"{weights} | {_cells(row.outputs, routes)} |")
    params = {name: quant_params(v) for name, v in views.items()}
    names = list(models)
    lines += ["", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in params[names[0]]:
        lines.append(f"| {key} | " + " | ".join(params[n][key] for n in names) + " |")
    for op in ("Add", "Resize", "Concat"):
        details = {name: node_details(v, op) for name, v in views.items()}
        count = max(len(d) for d in details.values())
        lines += ["", f"{op} nodes in graph order (activation inputs → route of the output to a Q):", "",
                  "| # | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for i in range(count):
            lines.append(f"| {i + 1} | " + " | ".join(d[i] if i < len(d) else "" for d in details.values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True, help="a trained run (checkpoint.pt, policy.yaml)")
    parser.add_argument("--policy", default=None, help="default: the run's policy.yaml")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--calib-images", type=int, default=16, help="first N validation scenes")
    parser.add_argument("--calibration-method", choices=("max", "entropy"), default="max")
    parser.add_argument("--keep", default=None, help="also keep the three ONNX files in this folder")
    parser.add_argument("--out", default=None, help="also write the tables as Markdown here")
    args = parser.parse_args()
    try:
        import modelopt
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        sys.exit(f"modelopt_placement: nvidia-modelopt with its onnx extra is not importable ({exc}); "
                 "pip install 'nvidia-modelopt[onnx]' into a separate venv (see this script's docstring)")

    import torch

    from qnas.config import load_config
    from qnas.pipeline import Context, export_model, load_trained
    from qnas.space import read_policy
    from qnas.train import cut_subnet

    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    supernet, _ = load_trained(ctx.config, args.checkpoint)
    policy = read_policy(args.policy or str(Path(args.checkpoint) / "policy.yaml"), ctx.space)
    subnet = cut_subnet(supernet, policy.genome, ctx.bn_images).eval()
    fp32 = export_model(subnet, "onnx-fp32", args.height, args.width)
    ours = export_model(subnet, "trt", args.height, args.width)
    dataset = ctx.loader("val").dataset
    scenes = torch.stack([dataset[i][0] for i in range(args.calib_images)])
    calib = torch.nn.functional.interpolate(scenes, size=(args.height, args.width), mode="bilinear").numpy()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(fp32, folder / "fp32.onnx")
        onnx.save(ours, folder / "ours_trt.onnx")
        quantize(str(folder / "fp32.onnx"), quantize_mode="int8", calibration_data={"image": calib},
                 calibration_method=args.calibration_method, calibration_eps=["cpu"],
                 high_precision_dtype="fp32", output_path=str(folder / "modelopt_int8.onnx"), log_level="WARNING")
        theirs = onnx.load(folder / "modelopt_int8.onnx")

    header = (f"policy {policy.name} of {args.checkpoint}, {args.height}x{args.width}; nvidia-modelopt "
              f"{modelopt.__version__} int8, {args.calibration_method} calibration on {args.calib_images} validation "
              f"scenes, CPU EP; onnx {onnx.__version__}\n\n")
    text = header + report({"ours (trt)": ours, "ModelOpt": theirs})
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
