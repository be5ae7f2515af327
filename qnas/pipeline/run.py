"""``qnas run``: every stage on one config, each skipped when its outputs are complete, and the report."""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from itertools import groupby
from pathlib import Path

from qnas.config import config_difference, config_hash
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.export.profiles import PROFILES, profile_names
from qnas.pipeline.context import Context
from qnas.pipeline.exporting import export
from qnas.pipeline.latency import latency_check, latency_table
from qnas.pipeline.lock import LOCK_NAME, FolderLock, clean_temporary_files
from qnas.pipeline.paths import output_folder
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.runs import saved_config
from qnas.pipeline.searching import compare, compare_table, pick_winners, safe_name, search, seed_run, target_line
from qnas.pipeline.sensitivity import bits_agreement, read_sensitivity, sensitivity
from qnas.pipeline.training import train_supernet
from qnas.quant.targets import get_target
from qnas.space.genome import Genome
from qnas.space.networks import network_plan
from qnas.space.policy import Policy, atomic_write_text, read_policy

__all__ = ["run", "policy_summary"]


class _Stages:
    """Runs each stage unless the run folder's ``stages.json`` marks it done; the mark is written only after
    every output of the stage is, so a kill at any instant leaves the stage to be resumed or redone."""

    def __init__(self, out: Path, reporter: Reporter) -> None:
        self.marks = out / "stages.json"
        self.reporter = reporter
        self.times: dict[str, float] = {}
        self.skipped: list[str] = []

    def _done(self) -> dict[str, str]:
        try:
            return json.loads(self.marks.read_text())
        except (OSError, ValueError):
            return {}

    def __call__(self, name: str, work) -> None:
        if name in self._done():
            self.skipped.append(name)
            self.reporter.skipped(name)
            return
        tic = time.perf_counter()
        with self.reporter.stage(name):
            work()
        self.times[name] = time.perf_counter() - tic
        atomic_write_text(self.marks, json.dumps({**self._done(), name: time.strftime("%Y-%m-%d %H:%M:%S")},
                                                 indent=1) + "\n")


def run(ctx: Context, out: str | os.PathLike[str], *, resume: bool = False, backend: str = "ort-cpu",
        reporter: Reporter = SILENT) -> Path:
    """Train the supernet, measure and check the latency table, search under the config's budgets (and pick
    a policy at each of search.winners from the same search), measure per-layer precision sensitivity,
    fine-tune the winners and the uniform baselines (compare.seeds seeds each), export the first winner in
    every profile, write report.md. ``resume`` continues a folder killed at any instant. ``backend``: the
    INT8 runtime of the latency table (a resumed run keeps its table's)."""
    out = output_folder(out)
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()) and not resume:
        raise QnasError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    with FolderLock(out):
        clean_temporary_files(out)
        recorded = out / "config.yaml"
        if recorded.exists():  # a resumed run: its finished stages hold this config's results only
            saved = saved_config(recorded)
            if saved != ctx.config:
                difference = "its config.yaml is unreadable" if saved is None else config_difference(saved, ctx.config)
                raise QnasError(f"{out} was started with a different config ({difference}); resume it with the "
                                f"config in {recorded}, or choose another --out")
        else:
            atomic_write_text(recorded, ctx.config.to_yaml())
        return _run(ctx, out, backend, reporter)


def _run(ctx: Context, out: Path, backend: str, reporter: Reporter) -> Path:
    stage = _Stages(out, reporter)
    sn, lut, found, cmp, exported = out / "supernet", out / "lut.yaml", out / "search", out / "compare", out / "export"
    sens = out / "sensitivity"
    tic = time.perf_counter()

    def started(folder: Path) -> bool:
        return folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir())

    stage("train supernet", lambda: train_supernet(ctx, sn, resume=(sn / "checkpoint.pt").exists(), reporter=reporter))
    stage("latency table", lambda: latency_table(ctx, lut, backend=backend, reporter=reporter))
    # the fitted offsets make a budget like 0.8x:uniform_w8a8 mean the same real fraction on every backend's table
    # (OpenVINO's units, each timed alone, pay 0.13-0.25 ms each that a whole network pays once)
    stage("latency check", lambda: latency_check(ctx, lut, samples=30, plot=out / "lut_check.png", fit_overhead=True,
                                                 reporter=reporter))
    stage("search", lambda: search(ctx, sn, found, lut=lut, resume=started(found), reporter=reporter))
    budgets = list(ctx.config.search.winners)
    policies = pick_winners(ctx, found, budgets) if budgets else [read_policy(found / "best.yaml", ctx.space)]
    stage("precision sensitivity", lambda: sensitivity(ctx, sn, sens, reporter=reporter))
    stage("fine-tune and compare", lambda: compare(ctx, cmp, policies, supernet_run=sn, lut=lut, reporter=reporter))
    policy = policies[0]
    files = {fmt: exported / f"{safe_name(policy.name)}{PROFILES[fmt].suffix}" for fmt in profile_names()}
    for fmt, path in files.items():
        stage(f"export {fmt}", lambda fmt=fmt, path=path: export(ctx, seed_run(cmp, policy, 0), policy.genome, fmt, path))
    _report(ctx, out, policies, files, stage, time.perf_counter() - tic)
    return out / "report.md"


def policy_summary(ctx: Context, genome: Genome) -> str:
    """The searched network in a few lines: architecture per stage and where its MACs run at which bits."""
    plan = network_plan(ctx.spec, genome, *ctx.deploy_hw)
    stages = []
    blocks = [u for u in plan.units if u.kind == "mbconv"]
    for s, units in groupby(blocks, key=lambda u: u.label.split(".")[0]):
        shown = [f"k{u.param('k')} e{u.param('e')}" for u in units]
        stages.append(f"stage {s[1:]}: depth {len(shown)} ({', '.join(shown)})")
    macs: Counter = Counter()
    for conv in plan.convs():
        macs[(conv.wbits, conv.abits)] += conv.macs
    total = sum(macs.values())
    shares = ", ".join(f"W{w}A{a} {100 * m / total:.0f}%" for (w, a), m in sorted(macs.items(), key=lambda kv: -kv[1]))
    return "Architecture: " + "; ".join(stages) + f".\n\nShare of MACs by bit widths: {shares}."


def _report(ctx: Context, out: Path, policies: list[Policy], files: dict[str, Path], stages: _Stages,
            seconds: float) -> None:
    policy = policies[0]
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    check = json.loads((out / "lut_check.json").read_text())
    table = LatencyTable.read(out / "lut.yaml")
    overhead, per_unit = table.overhead_ms, table.unit_overhead_ms
    per_unit_text = f" and {per_unit:+.3f} ms per unit" if per_unit else ""
    if "fit_refused" in check:
        fitted = f"\nIts offsets were not fitted: {check['fit_refused']}."
    elif (check.get("fitted_overhead_ms") == overhead and check.get("fitted_unit_overhead_ms", 0.0) == per_unit
          and "fitted_mape" in check):
        fitted = (f"\nThe table's {'offsets were' if per_unit else 'constant offset was'} then fitted to them "
                  f"({overhead:+.2f} ms per network{per_unit_text}; MAPE {check['fitted_mape'] * 100:.1f}% after the "
                  "fit), so latency budgets and predicted milliseconds refer to whole networks.")
    else:  # a run whose check predates the fit, or a check run by hand since
        fitted = f"\nThe table's overhead is {overhead:+.2f} ms per network{per_unit_text}."
    measured_on = table.fingerprint
    runtime = ", ".join(f"{k} {v}" for k, v in measured_on.items() if k != "backend")
    compare_text = (out / "compare" / "compare.md").read_text()
    differences = compare_text[compare_text.index("Differences"):].split("![")[0].strip() \
        if "Differences" in compare_text else ""
    winners = "\n".join(f"- [`{p.name}`](search/winners/{p.name}.yaml): budget {p.provenance.get('bitops_budget')}, "
                        f"{p.metrics['bitops'] / 1e9:.3f} GBitOps, search-val mIoU {p.metrics['search_val_miou']:.4f}"
                        for p in policies if "bitops_budget" in p.provenance)
    sens = json.loads((out / "sensitivity" / "sensitivity.json").read_text())
    agreement = bits_agreement(read_sensitivity(out / "sensitivity"), policy.genome)
    agree_text = ", ".join(f"{what} {tau:+.2f}" for what, tau in agreement.items()) or "not computable"
    times = "\n".join(f"| {name} | {sec:.0f} |" for name, sec in stages.times.items())
    target = get_target(ctx.config.deploy.target)
    exported = "\n".join(f"- `{fmt}`: [{path.name}](export/{path.name}) ({path.stat().st_size / 1e6:.2f} MB)"
                         + (" — the deployed file of the target" if fmt == target.profile else "")
                         for fmt, path in files.items())
    deployed_note = (f"; miou_deployed: the `{target.profile}` file run in {PROFILES[target.profile].runtime}"
                     if target.file_scored else "")
    text = f"""# qnas run: {ctx.config.data.dataset}

Config `{ctx.source}` (hash `{config_hash(ctx.config)}`), run folder `{out}`.

## Comparison (every policy fine-tuned from the supernet with the same epochs, {ctx.config.compare.seeds} seed(s) each)

{target_line(target)} Every network below was evaluated, searched and fine-tuned with these numerics
(`--target`, config `deploy.target`).

{compare_table(rows)}

GBitOps and GMACs at {ctx.deploy_hw[0]}x{ctx.deploy_hw[1]}. mIoU on the validation split{" (mean ± std over seeds)" if ctx.config.compare.seeds > 1 else ""}{deployed_note}.

{differences}

![comparison](compare/compare.png)

## Searched policies

One search ({ctx.config.search.strategy}, [`search/best.yaml`](search/best.yaml) at budgets
{json.dumps(policy.provenance.get("budgets"))}){" and the best of its candidates at each budget:" if winners else "."}

{winners}

`{policy.name}` (exported below): {policy_summary(ctx, policy.genome)}

![search](search/search.png)

## Where bits matter

The reference architecture at uniform {max(ctx.spec.bits)} bits (search-val mIoU {100 * sens["reference_miou"]:.2f} on
{sens["scenes"]} scenes) with one layer's weights or input activations dropped alone to {", ".join(map(str, sens["bits"]))} bits.
Kendall tau between a layer's loss at {min(sens["bits"])} bits and the bits `{policy.name}` gives it: {agree_text}.

![sensitivity](sensitivity/sensitivity.png)

## Latency table

Backend `{measured_on.get("backend", "ort-cpu")}` ({runtime}), blocks at {ctx.deploy_hw[0]}x{ctx.deploy_hw[1]}.
{check["samples"]} whole networks measured against the table's prediction: MAPE {check["mape"] * 100:.1f}%,
Kendall tau {check["kendall_tau"]:.3f} (MACs alone: {check["macs_kendall_tau"]:.3f}).{fitted}

![latency](lut_check.png)

## Exported files

{exported}

## Stages run by this invocation ({seconds:.0f} s in all; skipped: {", ".join(stages.skipped) or "none"})

| stage | seconds |
|---|---|
{times}
"""
    atomic_write_text(out / "report.md", text)
