"""Can the latency table be trusted on a busy machine? (issue 14, points 2 and 5)

For each backend (``ort-cpu``, ``ov-cpu``): build the table on an idle machine, then again while one
other process keeps a core busy (a Python busy loop, started before and stopped after the build);
check each table against whole networks measured on the idle machine (``qnas latency-check``:
MAPE and Kendall tau over the same sampled networks; the MAPE once the median offset between
measured and predicted is added; and the fits ``qnas latency-check --fit-overhead`` chooses between, a constant
per network or a constant plus a term per unit, with each one's leave-one-out MAPE, the one chosen, and the
chosen fit's MAPE and Kendall tau). Reports the builder's own noise figures (median spread between interleaved
rounds, entries still noisy after re-measuring, the too-noisy flag) beside them.

Usage: python benchmarks/latency_trust.py --out DIR [--samples 30] [--out-md FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from qnas.config import load_config
from qnas.cost.agreement import kendall_tau, mape
from qnas.cost.latency import choose_fit, fit_overheads, with_overheads
from qnas.pipeline import Context
from qnas.pipeline.latency import FIT_FLOOR, latency_check, latency_table

BUSY = "while True: pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--backends", default="ort-cpu,ov-cpu")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()
    ctx = Context(load_config(args.config))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| backend | built | blocks | median spread | noisy blocks | too noisy | MAPE | Kendall tau | "
             "MAPE, median offset fitted | offset | leave-one-out MAPE, constant / per unit | chosen fit | "
             "MAPE, chosen fit | Kendall tau, chosen fit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for backend in args.backends.split(","):
        for condition in ("idle", "one busy process"):
            path = out / f"lut_{backend}_{'idle' if condition == 'idle' else 'busy'}.yaml"
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if condition != "idle" else None
            try:
                table = latency_table(ctx, path, backend=backend, restart=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            check = latency_check(ctx, path, samples=args.samples, plot=path.with_suffix(".png"))
            m = table.method
            offset = check["median_offset_ms"]  # what `qnas latency-check --fit-overhead` adds to the table
            fitted = mape([p + offset for p in check["predicted_ms"]], check["measured_ms"])
            fits = fit_overheads(check["block_sums_ms"], check["units"], check["measured_ms"],
                                 min(table.entries.values()))
            chosen = choose_fit(fits, FIT_FLOOR)
            loo = " / ".join(f"{100 * fits[name].loo_mape:.1f}%" if name in fits and fits[name].loo_mape is not None
                             else "-" for name in ("constant", "per unit"))
            if chosen is None:
                shown = "refused | - | -"
            else:
                predicted = with_overheads(check["block_sums_ms"], check["units"], chosen.overhead_ms,
                                           chosen.unit_overhead_ms)
                shown = (f"{chosen.model} ({chosen.overhead_ms:+.2f} ms, {chosen.unit_overhead_ms:+.3f} ms per unit) | "
                         f"{100 * mape(predicted, check['measured_ms']):.1f}% | "
                         f"{kendall_tau(predicted, check['measured_ms']):.3f}")
            row = (f"| {backend} | {condition} | {len(table.entries)} | {100 * m['median_spread']:.1f}% | "
                   f"{m['noisy_entries']} | {'yes' if m['too_noisy'] else 'no'} | {100 * check['mape']:.1f}% | "
                   f"{check['kendall_tau']:.3f} | {100 * fitted:.1f}% | {offset:+.2f} ms | {loo} | {shown} |")
            lines.append(row)
            print(row, flush=True)
    h, w = ctx.deploy_hw
    text = (f"Command: `python benchmarks/latency_trust.py --out {args.out} --samples {args.samples}`; tables at "
            f"{h}x{w}, 1 thread; every check measures {args.samples} whole networks on the idle machine.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text)


if __name__ == "__main__":
    main()
