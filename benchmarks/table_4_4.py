"""The headline comparison beside the thesis's Table 4-4 (METHOD.md §7).

Reruns ``qnas compare`` (every policy and the uniform W8A8 / W6A6 / W4A4 baselines fine-tuned at
equal budget from a trained supernet) and prints our table next to the thesis's, with the two
ratios the thesis states: BitOps saved at equal mIoU (thesis: 2.2x, 432 -> 200 GBitOps at
66.2 mIoU) and the mIoU gain of the mixed policy near half the W8A8 BitOps (thesis: +0.8 mIoU at
0.56x, 240 of 432 GBitOps). With ``--table`` it reads an existing ``compare.csv`` instead.

Usage:
  python benchmarks/table_4_4.py --run runs/digits                 # a qnas run folder: its policies
  python benchmarks/table_4_4.py --supernet RUN --lut L --out DIR POLICY.yaml [...]
  python benchmarks/table_4_4.py --table runs/digits/compare/compare.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

THESIS = [  # Cityscapes val, thesis Table 4-4
    ("MobileNetV2-Q", "uniform W8A8", 66.2, 432.0),
    ("SegQNAS", "mixed 4/6/8", 67.0, 240.0),
    ("MobileNetV2-Q", "uniform W6A6", 65.4, 243.0),
    ("SegQNAS", "mixed 4/6/8", 66.2, 200.0),
]
HALF_BUDGET = 0.56  # the thesis's "about half" point: 240 / 432


def _rerun(args: argparse.Namespace) -> Path:
    from qnas.config import load_config
    from qnas.pipeline import Context, compare

    if args.run:
        run = Path(args.run)
        supernet, lut, out = run / "supernet", run / "lut.yaml", Path(args.out or run / "table_4_4")
        policies = args.policies or [str(run / "search" / "best.yaml")]
    else:
        supernet, lut, out, policies = Path(args.supernet), args.lut and Path(args.lut), Path(args.out), args.policies
    ctx = Context(load_config(args.config))
    compare(ctx, out, [ctx.policy(p) for p in policies], supernet_run=supernet, lut=lut or None)
    return out / "compare.csv"


def ratios(rows: list[dict]) -> dict[str, str]:
    """The thesis's two headline ratios, computed on ``rows`` (compare.csv rows)."""
    w8 = next(r for r in rows if r["method"] == "uniform_w8a8")
    w8_miou, w8_bitops = float(w8["miou"]), float(w8["gbitops"])
    mixed = [r for r in rows if not r["method"].startswith("uniform_")]
    out = {}
    equal = [r for r in mixed if float(r["miou"]) >= w8_miou]
    if equal:
        best = min(equal, key=lambda r: float(r["gbitops"]))
        out["BitOps saving at >= W8A8 mIoU"] = f"{w8_bitops / float(best['gbitops']):.2f}x ({best['method']})"
    else:
        out["BitOps saving at >= W8A8 mIoU"] = "none: no mixed policy reaches the W8A8 mIoU"
    half = [r for r in mixed if float(r["gbitops"]) <= HALF_BUDGET * w8_bitops]
    if half:
        best = max(half, key=lambda r: float(r["miou"]))
        gain = 100 * (float(best["miou"]) - w8_miou)
        out[f"mIoU gain at <= {HALF_BUDGET}x W8A8 BitOps"] = (
            f"{gain:+.1f} points ({best['method']}, {float(best['gbitops']) / w8_bitops:.2f}x)")
    else:
        out[f"mIoU gain at <= {HALF_BUDGET}x W8A8 BitOps"] = "none: no mixed policy within that budget"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--run", help="a qnas run folder (supernet/, lut.yaml, search/best.yaml)")
    parser.add_argument("--supernet")
    parser.add_argument("--lut")
    parser.add_argument("--out", help="compare output folder (default: RUN/table_4_4)")
    parser.add_argument("--table", help="read this compare.csv instead of rerunning")
    parser.add_argument("policies", nargs="*")
    args = parser.parse_args()
    if not (args.table or args.run or (args.supernet and args.out)):
        parser.error("give --table, --run, or --supernet with --out")
    path = Path(args.table) if args.table else _rerun(args)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    w8_bitops = float(next(r for r in rows if r["method"] == "uniform_w8a8")["gbitops"])
    print("| thesis (Cityscapes) | precision | mIoU | GBitOps | x W8A8 | | ours | precision | mIoU | GBitOps | x W8A8 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ours = sorted(rows, key=lambda r: -float(r["gbitops"]))
    for i in range(max(len(THESIS), len(ours))):
        left = THESIS[i] if i < len(THESIS) else None
        right = ours[i] if i < len(ours) else None
        cells = ([left[0], left[1], f"{left[2]:.1f}", f"{left[3]:.0f}", f"{left[3] / THESIS[0][3]:.2f}"]
                 if left else [""] * 5)
        cells += ([right["method"], right["precision"], f"{100 * float(right['miou']):.1f}", right["gbitops"],
                   f"{float(right['gbitops']) / w8_bitops:.2f}"] if right else [""] * 5)
        print("| " + " | ".join(cells[:5]) + " | | " + " | ".join(cells[5:]) + " |")
    print()
    thesis = {"BitOps saving at >= W8A8 mIoU": "2.16x (432 -> 200 GBitOps at 66.2)",
              f"mIoU gain at <= {HALF_BUDGET}x W8A8 BitOps": "+0.8 points (240 GBitOps, 0.56x)"}
    for key, value in ratios(rows).items():
        print(f"{key}: ours {value}; thesis {thesis[key]}")


if __name__ == "__main__":
    main()
