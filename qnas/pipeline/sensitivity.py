"""Per-layer precision sensitivity: where do bits matter?

For one network cut from the supernet (by default the reference architecture at uniform 8 bits),
each quantized layer's weights, and separately its input activations, drop alone to fewer bits;
the subnet is cut, its BatchNorm recalibrated and its search-validation mIoU compared with the
reference's on the same scenes. ``bits_agreement`` then asks whether a searched policy spends its
bits on the layers where dropping them costs most.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from qnas.cost.agreement import kendall_tau
from qnas.data.loaders import make_loader
from qnas.pipeline.context import Context
from qnas.pipeline.lock import FolderLock
from qnas.pipeline.parallel import local_map
from qnas.pipeline.paths import output_folder
from qnas.pipeline.plots import sensitivity_plot
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.runs import load_trained
from qnas.pipeline.searching import write_csv
from qnas.space.genome import Genome
from qnas.space.policy import atomic_write_text
from qnas.train.subnet import evaluate_subnet

__all__ = ["sensitivity", "bits_agreement", "read_sensitivity"]

FILE = "sensitivity.csv"


def sensitivity(ctx: Context, supernet_run: str | os.PathLike[str], out: str | os.PathLike[str], *,
                genome: Genome | None = None, bits: tuple[int, ...] | None = None, scenes: int = 100,
                reporter: Reporter = SILENT) -> list[dict[str, Any]]:
    """mIoU change of ``genome`` (default: the uniform_w8a8 policy) when each layer's weight bits, or its
    input bits, alone drop to each of ``bits`` (default: every smaller choice of the space); measured on
    the first ``scenes`` search-validation scenes. Writes sensitivity.csv, .json and .png to ``out``."""
    out = output_folder(out)
    genome = genome if genome is not None else ctx.policy("uniform_w8a8").genome
    bits = bits or tuple(sorted((b for b in ctx.spec.bits if b < max(ctx.spec.bits)), reverse=True))
    device = ctx.setup_torch()
    supernet = load_trained(ctx.config, supernet_run)[0].to(device)
    split = ctx.loader("search").dataset
    loader = make_loader(Subset(split, range(min(scenes, len(split)))), 50, shuffle=False, seed=0)

    def miou(g: Genome) -> float:
        with torch.no_grad():
            return evaluate_subnet(supernet, g, ctx.bn_images, loader, ctx.num_classes, ctx.ignore_index)["miou"]

    with FolderLock(out):
        return _sensitivity(ctx, out, genome, bits, loader, miou, reporter)


def _sensitivity(ctx: Context, out: Path, genome: Genome, bits: tuple[int, ...], loader, miou,
                 reporter: Reporter) -> list[dict[str, Any]]:
    base = miou(genome)
    genes = [label for label in ctx.space.canonical_order(genome) if label.endswith((".wbits", ".abits"))]
    todo = [(label, b) for label in genes for b in bits if genome[label] != b]
    rows = []
    variants = [ctx.space.validate(genome.with_genes({label: b})) for label, b in todo]
    with reporter.steps("sensitivity") as progress:
        progress(todo[0][0] if todo else "", 0, len(todo))
        for i, ((label, b), value) in enumerate(zip(todo, local_map(miou, variants, *ctx.jobs(len(todo))))):
            progress(label, i + 1, len(todo))
            layer, _, kind = label.rpartition(".")
            rows.append({"layer": layer, "what": "weights" if kind == "wbits" else "activations", "bits": b,
                         "miou": round(value, 6), "delta_miou": round(value - base, 6)})
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / FILE, rows)
    atomic_write_text(out / "sensitivity.json", json.dumps({"reference_miou": base, "scenes": len(loader.dataset),
                                                             "bits": list(bits)}, indent=2) + "\n")
    sensitivity_plot(rows, out / "sensitivity.png",
                     title=f"mIoU change when one layer drops alone (reference mIoU {100 * base:.2f}, "
                           f"{len(loader.dataset)} search-val scenes)")
    return rows


def read_sensitivity(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(Path(folder) / FILE) as f:
        return list(csv.DictReader(f))


def bits_agreement(rows: list[dict[str, Any]], genome: Genome) -> dict[str, float]:
    """Kendall's tau between how much a layer loses at the fewest bits (weights, activations) and the bits
    ``genome`` gives it, over the layers both have: positive when bits go where they matter."""
    out = {}
    for what, suffix in (("weights", "wbits"), ("activations", "abits")):
        fewest = min(int(r["bits"]) for r in rows)
        loss = {r["layer"]: -float(r["delta_miou"]) for r in rows if r["what"] == what and int(r["bits"]) == fewest}
        common = [layer for layer in loss if f"{layer}.{suffix}" in genome]
        if len(common) >= 3 and len({genome[f"{layer}.{suffix}"] for layer in common}) > 1:
            tau = kendall_tau([loss[layer] for layer in common], [genome[f"{layer}.{suffix}"] for layer in common])
            out[what] = float(np.round(tau, 3))
    return out
