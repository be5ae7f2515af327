"""Where OpenVINO's execution of the ``openvino`` file departs from the file: its fused conv post-ops.

Usage: python benchmarks/openvino_postops.py [--genome uniform4|largest|smallest] [--seed 0]

Builds the small test supernet (untrained, seed ``--seed``), cuts one subnet, exports its ``openvino``
file at 48x48 and runs one random image through onnxruntime with every graph optimization off (the
file as written, which computes the model's codes) and through OpenVINO's CPU plugin (f32 precision
hint). For the first residual block it then cuts the graph after the requantization that follows the
residual Add and compares the two runtimes there: once with that tensor as the only output, and once
with an intermediate (the Add, the projection conv, or its requantized output) as a second output,
which stops OpenVINO from fusing the whole chain into one convolution. Prints, for each, how many
values differ, the OpenVINO runtime node that computed the output, and for the fused case where the
changed codes lay (their distance from a rounding boundary, in steps).
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import torch

from qnas.data import DigitScenes
from qnas.export.openvino import compile_openvino, export_openvino_model
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", choices=["uniform4", "largest", "smallest"], default="uniform4")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
                  "or less from a .5 rounding boundary)\n")


if __name__ == "__main__":
    main()
