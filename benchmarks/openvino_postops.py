"""Where OpenVINO's execution of the ``openvino`` file departs from the file: its fused conv post-ops.

Usage: python benchmarks/openvino_postops.py [--genome uniform4|largest|smallest] [--seed 0]
       python benchmarks/openvino_postops.py --checkpoint RUN [--scenes 200]

The cause, in OpenVINO's CPU plugin (``DnnlPostOpsComposer``,
``src/plugins/intel_cpu/src/dnnl_postops_composer.cpp``): when a conv's post-op chain starts with a
FakeQuantize and also holds a Sum (a residual ``Add`` fused into the conv) and a later FakeQuantize,
the first FakeQuantize is applied without its rounding ("drop rounding one special residual pattern",
marked there as an unsafe optimization still to be validated). The projection's output then enters
the sum unrounded, off by up to half a step of its grid.

Builds the small test supernet (untrained, seed ``--seed``), cuts one subnet, exports its ``openvino``
file at 48x48 and runs one random image through onnxruntime with every graph optimization off (the
file as written, which computes the model's codes) and through OpenVINO's CPU plugin (f32 precision
hint). For the first residual block it then cuts the graph after the requantization that follows the
residual Add and compares the two runtimes there: once with that tensor as the only output, and once
with an intermediate (the Add, the projection conv, or its requantized output) as a second output,
which stops OpenVINO from fusing the whole chain into one convolution. Prints, for each, how many
values differ, the OpenVINO runtime node that computed the output, and for the fused case where the
changed codes lay (their distance from a rounding boundary, in steps).

``--checkpoint RUN``: the trained policy of a run folder (``qnas compare`` run, ``policy.yaml`` beside
the checkpoint), its ``openvino`` file at the data's resolution with the ``openvino`` target's numerics.
Lists the convs whose OpenVINO post-op chain has that shape, and the per-pixel agreement with the
file as written (onnxruntime, no graph optimizations) on the first ``--scenes`` validation scenes, as
is and with each such chain's residual sum also a graph output (which stops the fusion).
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import torch

from qnas.data import DigitScenes
from qnas.export.openvino import compile_openvino, export_openvino_model, unrounded_residual_sums, with_outputs
from qnas.space import SearchSpace, SpaceSpec
from qnas.supernet import build_supernet
from qnas.train import cut_subnet


# the small space of the test suite (tests/golden/compute.py)
SMALL_SPEC = dict(stem_channels=(8, 12, 16), stem_strides=(2, 2, 1), stage_channels=(16, 24, 32),
                  highres_channels=16, head_channels=(16, 16))


def _run_ort(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def _run_openvino(model: onnx.ModelProto, x: np.ndarray) -> tuple[list[np.ndarray], str]:
    compiled = compile_openvino(model)
    result = compiled.create_infer_request().infer({0: x})
    fused = ""
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        if model.graph.output[0].name in names.split(","):
            fused = f"{info['layerType'].astype(str)}: {names}"
    return [result[compiled.outputs[i]] for i in range(len(compiled.outputs))], fused


def _unrounded_mismatch(model: onnx.ModelProto, add: onnx.NodeProto, chain: list[onnx.NodeProto], x: np.ndarray,
                        openvino_out: np.ndarray) -> int:
    """How many of OpenVINO's values differ from the file's chain recomputed with the projection conv's
    requantization unrounded (Clip kept, rounding dropped), as the CPU plugin's composer does."""
    produced = {o: n for n in model.graph.node for o in n.output}
    const = {t.name: float(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer if not t.dims}
    dequantize = produced[add.input[0]]
    clipped = produced[dequantize.input[0]].input[0]  # Conv -> Clip -> QuantizeLinear -> DequantizeLinear -> Add
    cut = onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [clipped, add.input[1]])
    branch, skip = _run_ort(cut, x)
    clip = next(n for n in chain if n.op_type == "Clip")
    step = const[next(n for n in chain if n.op_type == "QuantizeLinear").input[1]]
    total = np.clip(branch + skip, const[clip.input[1]], const[clip.input[2]])
    return int((np.abs(np.round(total / step).astype(np.float32) * step - openvino_out) > 1e-6).sum())


def trained(run: str, scenes: int) -> None:
    import os

    from qnas.config import load_config
    from qnas.pipeline import Context, load_trained
    from qnas.quant import apply_target
    from qnas.space import read_policy

    ctx = Context(load_config(os.path.join(run, "config.yaml")))
    policy = read_policy(os.path.join(run, "policy.yaml"), ctx.space)
    subnet = cut_subnet(apply_target(load_trained(ctx.config, run)[0], "openvino"), policy.genome, ctx.bn_images).eval()
    data = ctx.loader("val").dataset
    h, w = data[0][0].shape[1:]
    model = onnx.shape_inference.infer_shapes(export_openvino_model(subnet, h, w))
    x = np.stack([data[i][0].numpy() for i in range(scenes)])
    want = np.concatenate([_run_ort(model, x[i:i + 1])[0] for i in range(scenes)]).argmax(1)
    adds = unrounded_residual_sums(model)
    print(f"{run}: {len(adds)} residual sum(s) whose projection requantization OpenVINO applies unrounded: "
          f"{', '.join(adds) or 'none'}")
    for label, m in (("as is", model), ("residual sums also outputs", with_outputs(model, adds))):
        request = compile_openvino(m).create_infer_request()
        got = np.concatenate([request.infer({0: x[i:i + 1]})[0].copy() for i in range(scenes)]).argmax(1)
        print(f"| {label} | {np.mean(got == want):.5f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", choices=["uniform4", "largest", "smallest"], default="uniform4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="a trained run folder (policy.yaml, config.yaml)")
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()
    if args.checkpoint:
        trained(args.checkpoint, args.scenes)
        return
    torch.manual_seed(args.seed)
    space = SearchSpace(SpaceSpec(**SMALL_SPEC))
    genome = {"uniform4": space.uniform(4, 3, 6, 3), "largest": space.largest(), "smallest": space.smallest()}[args.genome]
    data = DigitScenes("train", 16, 48, 48, seed=0)
    images = [torch.stack([data[i][0] for i in range(b, b + 8)]) for b in range(0, 16, 8)]
    subnet = cut_subnet(build_supernet(space.spec).eval(), genome, images).eval()
    model = onnx.shape_inference.infer_shapes(export_openvino_model(subnet, 48, 48))
    x = np.random.default_rng(args.seed).random((1, 3, 48, 48), dtype=np.float32)
    want, got = _run_ort(model, x)[0], _run_openvino(model, x)[0][0]
    print(f"whole file ({args.genome}): OpenVINO and the file as written agree on "
          f"{np.mean(got.argmax(1) == want.argmax(1)):.3f} of the pixels, logits differ by up to {np.abs(got - want).max():.3g}")
    sums = unrounded_residual_sums(model)
    got = _run_openvino(with_outputs(model, sums), x)[0][0]
    print(f"with its {len(sums)} residual sum(s) that OpenVINO requantizes unrounded also graph outputs: agree on "
          f"{np.mean(got.argmax(1) == want.argmax(1)):.3f} of the pixels, logits differ by up to {np.abs(got - want).max():.3g}")

    nodes = list(model.graph.node)
    add = next(n for n in nodes if n.op_type == "Add")
    produced = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    chain, tensor = [], add.output[0]  # Add -> (Clip) -> QuantizeLinear -> DequantizeLinear
    while not chain or chain[-1].op_type != "DequantizeLinear":
        chain.append(next(n for n in consumers[tensor] if n.op_type in ("Clip", "QuantizeLinear", "DequantizeLinear")))
        tensor = chain[-1].output[0]
    quantize = next(n for n in chain if n.op_type == "QuantizeLinear")
    step = float(onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == quantize.input[1])))
    branch = produced[add.input[0]]
    print(f"first residual block: {add.name or add.output[0]} -> {' -> '.join(n.op_type for n in chain)} "
          f"(step {step:.4g})\n")
    print("| outputs of the cut graph | values of the requantized sum that differ | OpenVINO node that computed it |")
    print("|---|---|---|")
    inp = model.graph.input[0].name
    for extra in ([], [add.output[0]], [branch.output[0]]):
        outputs = [tensor] + extra
        cut = onnx.utils.Extractor(model).extract_model([inp], outputs)
        ref = _run_ort(cut, x)
        out, fused = _run_openvino(cut, x)
        differ = np.abs(out[0] - ref[0]) > 1e-6
        print(f"| {', '.join(outputs)} | {int(differ.sum())} of {differ.size} | {fused[:90]} |")
        if differ.any() and not extra:
            total = _run_ort(onnx.utils.Extractor(model).extract_model([inp], [chain[0].output[0]]), x)[0]
            scaled = total[differ] / step
            print(f"\n(changed codes: the sum divided by the step lies {np.abs(scaled - np.floor(scaled) - 0.5).max():.3f} "
                  "or less from a .5 rounding boundary; OpenVINO's values and the file's with the projection's "
                  f"requantization left unrounded differ in {_unrounded_mismatch(model, add, chain, x, out[0])} "
                  f"of {differ.size})\n")


if __name__ == "__main__":
    main()
