"""Build a ``trt`` file with TensorRT and fail unless every convolution runs in Int8 (issue 14).

For a machine with TensorRT (``trtexec`` on PATH): builds the engine strongly typed (the Q/DQ
nodes alone decide precisions), exports TensorRT's per-layer information, and checks every layer
that implements a convolution: its inputs must be Int8. Prints one line per convolution layer
and a summary; exit status 1 if any convolution is not Int8, 2 if TensorRT could not build.

Usage: python benchmarks/trt_int8_check.py FILE_trt_qdq.onnx [--workdir DIR]
(make one with ``qnas export --format trt``; ``qnas run`` writes ``export/*_trt_qdq.onnx``).

Not run where qnas is developed (no TensorRT there): the layer-information keys read below are
TensorRT 10's detailed profiling output (``--profilingVerbosity=detailed``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def conv_layers(info: dict) -> list[dict]:
    """Layers of TensorRT's layer information that compute a convolution (fused or not)."""
    layers = info.get("Layers", [])
    return [layer for layer in layers if isinstance(layer, dict)
            and "conv" in (str(layer.get("LayerType", "")) + str(layer.get("TacticName", ""))).lower()]


def input_types(layer: dict) -> list[str]:
    return [str(i.get("Format/Datatype", "")) for i in layer.get("Inputs", [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if shutil.which("trtexec") is None:
        print("trtexec is not on PATH: install TensorRT", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="trt_check_"))
    work.mkdir(parents=True, exist_ok=True)
    layers_json = work / "layers.json"
    command = ["trtexec", f"--onnx={args.onnx}", "--stronglyTyped", "--profilingVerbosity=detailed",
               f"--exportLayerInfo={layers_json}", f"--saveEngine={work / 'engine.plan'}", "--skipInference"]
    print(" ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not layers_json.exists():
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        return 2
    convs = conv_layers(json.loads(layers_json.read_text()))
    not_int8 = []
    for layer in convs:
        types = input_types(layer)
        ok = bool(types) and "Int8" in types[0]
        print(f"{'int8 ' if ok else 'OTHER'} {layer.get('Name', '?')}: {types}")
        if not ok:
            not_int8.append(layer.get("Name", "?"))
    print(f"{len(convs) - len(not_int8)} of {len(convs)} convolution layers in Int8")
    return 1 if not_int8 or not convs else 0


if __name__ == "__main__":
    sys.exit(main())
