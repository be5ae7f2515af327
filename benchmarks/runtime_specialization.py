"""The thesis's Table 4-3 on runtimes: a network searched for one INT8 runtime, measured on both (issue 14).

For each latency backend (``ort-cpu``: onnxruntime QLinear graphs; ``ov-cpu``: OpenVINO Q/DQ
graphs), build its latency table at the deployment resolution (resumable; an existing table is
reused), fit its constant offset to 30 whole networks (``qnas latency-check --fit-overhead``; without it a
ratio budget such as 0.8x W8A8 is a tighter real budget on the table that over-predicts more; ``--no-fit``
skips it), and run a latency-budgeted search on one trained supernet with that table. Then measure
every winner and the uniform W8A8 reference on both runtimes, as whole INT8 networks of the same
graph form the tables time, in interleaved rounds (medians). A runtime-specialized search should
give the winner that is fastest on its own runtime, which the table shows or refutes.

Usage: python benchmarks/runtime_specialization.py --supernet RUN/supernet --out DIR
       [--budget 0.8x:uniform_w8a8] [--lut-ort RUN/lut.yaml] [--no-fit] [--rounds 7] [--out-md FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

from qnas.config import load_config
from qnas.cost.latency import LatencyTable
from qnas.export.latency import get_backend, measure_network
from qnas.pipeline import Context
from qnas.pipeline.latency import latency_check, latency_table
from qnas.pipeline.searching import search
from qnas.space import read_policy

BACKENDS = ("ort-cpu", "ov-cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", default="0.8x:uniform_w8a8", help="latency budget for both searches")
    parser.add_argument("--lut-ort", default=None,
                        help="an existing ort-cpu table, copied into --out (default: built there)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out-md", default=None)
    parser.add_argument("--no-fit", action="store_true",
                        help="search on the tables as built (default: fit each table's constant offset to 30 whole "
                             "networks first, so that a ratio budget is the same real budget on both)")
    args = parser.parse_args()
    config = load_config(args.config)
    ctx = Context(replace(config, search=replace(config.search, bitops_budget=None)))  # the latency budget alone
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {name: out / f"lut_{name}.yaml" for name in BACKENDS}
    if args.lut_ort and not tables["ort-cpu"].exists():  # a copy: fitting must not change another run's table
        shutil.copyfile(args.lut_ort, tables["ort-cpu"])
    winners, fits = {}, []
    for name in BACKENDS:
        if name != "ort-cpu" or not args.lut_ort:  # resumable: a complete table is kept as it is
            latency_table(ctx, tables[name], backend=name)
        found = out / f"search_{name}"
        if not args.no_fit and not found.exists():  # a search already started keeps the table it started with
            check = latency_check(ctx, tables[name], samples=30, fit_overhead=True)
            fits.append(f"{name}: MAPE {100 * check['mape']:.1f}% before the fit, "
                        + (f"{100 * check['fitted_mape']:.1f}% after ({check['fit_model']} fit); "
                           f"tau {check['kendall_tau']:.3f} before"
                           if "fitted_mape" in check else f"not fitted ({check['fit_refused']})"))
        if not (found / "best.yaml").exists():
            search(ctx, args.supernet, found, latency_budget=args.budget, lut=tables[name],
                   resume=(found / "state.json").exists())
        winners[f"searched for {name}"] = read_policy(found / "best.yaml", ctx.space)
    reference = ctx.policy("uniform_w8a8")
    policies = {"uniform_w8a8": reference, **winners}
    engines = {name: get_backend(name, 1) for name in BACKENDS}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, policy in policies.items():
            for name, engine in engines.items():
                ms = measure_network(ctx.spec, policy.genome, ctx.deploy_hw, engine, 3, args.repeats,
                                     check_integer=False)
                times.setdefault((label, name), []).append(ms)
    med = {key: statistics.median(v) for key, v in times.items()}
    h, w = ctx.deploy_hw
    lines = ["# Runtime specialization (the thesis's Table 4-3 on runtimes)", "",
             f"Command: `python benchmarks/runtime_specialization.py --supernet {args.supernet} --out {args.out}"
             f" --budget {args.budget}{' --lut-ort ' + args.lut_ort if args.lut_ort else ''}"
             f"{' --no-fit' if args.no_fit else ''}`; latency budget "
             f"{args.budget} on each runtime's own table; whole INT8 networks at {h}x{w}, 1 thread, "
             f"{args.rounds} interleaved rounds x {args.repeats} runs, medians (ms; in brackets: relative to W8A8 "
             "on the same runtime). Table overheads the searches used: "
             + ", ".join(f"{n} {t.overhead_ms:+.3f} ms and {t.unit_overhead_ms:+.3f} ms per unit"
                         for n, t in ((n, LatencyTable.read(tables[n])) for n in BACKENDS)) + "."
             + (f" Fitted in this run: {'; '.join(fits)}." if fits else ""), "",
             "| network | supernet search-val mIoU | " + " | ".join(f"{n} ms" for n in BACKENDS) + " |",
             "|---|---|" + "---|" * len(BACKENDS)]
    for label, policy in policies.items():
        miou = f"{policy.metrics['search_val_miou']:.4f}" if "search_val_miou" in policy.metrics else ""
        cells = [f"{med[(label, n)]:.2f} ({med[(label, n)] / med[('uniform_w8a8', n)]:.2f})" for n in BACKENDS]
        lines.append(f"| {label} | {miou} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text)


if __name__ == "__main__":
    main()
