"""Issue 18, point 3 (FasterSeg's teacher-student): does fine-tuning a searched student gain from distilling a
teacher cut from the same supernet, and from which teacher?

Variants, each fine-tuning ``--student`` from ``--supernet`` with seeds 0..N-1 (data order, augmentation):

- ``none``: no distillation (``train.finetune_distill: 0``, the default);
- ``largest``: distillation (weight ``--weight``) from the supernet's largest subnet at its highest bit widths;
- ``searched``: distillation from the teacher a search without any budget picks on the same supernet (evolution,
  96 evaluations, the best search-val mIoU): FasterSeg searches the teacher and the student together; here the
  teacher is searched first, alone, and the student is given (a budgeted search's winner).

The table gives each variant's fine-tuned mIoU (mean ± std), its difference from ``none`` with Welch's 95%
interval, and the wall time per fine-tuning run (distillation adds the teacher's forward to every step).

Usage: python benchmarks/teacher_student.py --supernet RUN/supernet --student POLICY --out DIR [--seeds 3]
       [--weight 1.0] [--config configs/digits.yaml] [--out-md F.md]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from qnas.cost import genome_cost
from qnas.pipeline import Context, search
from qnas.pipeline.searching import train_seed_run
from qnas.space import read_policy
from qnas.stats import summarize, welch_difference
from search_context import evolution_context

def _finetuned(ctx: Context, args, out: Path, policy, k: int) -> tuple[float, float | None]:
    """The seed-k fine-tuned mIoU and the run's wall time (None when it was finished before this invocation)."""
    tic = time.perf_counter()
    done = (out / "runs" / policy.name / f"seed{k}" / "metrics.json").exists()
    run = train_seed_run(ctx, out, policy, k, args.supernet)
    seconds = None if done else time.perf_counter() - tic
    record = run / "wall_seconds.json"
    if seconds is not None:
        record.write_text(json.dumps({"seconds": seconds}))
    elif record.exists():
        seconds = json.loads(record.read_text())["seconds"]
    return json.loads((run / "metrics.json").read_text())["miou"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--student", required=True, help="the policy to fine-tune (e.g. a searched best.yaml)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weight", type=float, default=1.0, help="train.finetune_distill of the distilling variants")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    base = evolution_context(args.config, finetune_distill=0.0)
    student = read_policy(args.student, base.space)
    student = replace(student, name="student")
    teacher_folder = out / "teacher_search"
    if not (teacher_folder / "best.yaml").exists():
        search(base, args.supernet, teacher_folder, strategy="evolution", seed=0, bitops_budget="none",
               latency_budget="none", memory_budget="none", resume=(teacher_folder / "state.json").exists())
    teacher = read_policy(teacher_folder / "best.yaml", base.space)
    variants = {"none": base, "largest": evolution_context(args.config, finetune_distill=args.weight),
                "searched": evolution_context(args.config, finetune_distill=args.weight,
                                                finetune_teacher=str(teacher_folder / "best.yaml"))}
    results = {}
    for name, ctx in variants.items():
        results[name] = [_finetuned(ctx, args, out / name, student, k) for k in range(args.seeds)]
        print(name, results[name], flush=True)

    def gbitops(genome) -> float:
        return genome_cost(base.spec, genome, *base.deploy_hw).bitops / 1e9

    largest = base.space.largest()
    lines = [f"`python benchmarks/teacher_student.py --supernet {args.supernet} --student {args.student} --out {args.out} "
             f"--seeds {args.seeds} --weight {args.weight}` (config `{args.config}`)", "",
             f"Student: `{args.student}`, {gbitops(student.genome):.3f} GBitOps. Teachers: the largest subnet "
             f"({gbitops(largest):.3f} GBitOps); the searched one ({gbitops(teacher.genome):.3f} GBitOps, search-val "
             f"mIoU {100 * teacher.metrics['search_val_miou']:.2f}, evolution without a budget, 96 evaluations).", "",
             "| distillation | fine-tuned mIoU (mean ± std) | per seed | minus `none` (Welch 95%) | s per fine-tune (mean) |",
             "|---|---|---|---|---|"]
    plain = [m for m, _ in results["none"]]
    for name, values in results.items():
        mious = [m for m, _ in values]
        s = summarize([100 * m for m in mious])
        times = [t for _, t in values if t is not None]
        diff = "" if name == "none" else welch_difference(mious, plain).show()
        seconds = f"{sum(times) / len(times):.0f}" if times else "?"
        lines.append(f"| {name} | {s.mean:.2f} ± {s.std:.2f} | {', '.join(f'{100 * m:.2f}' for m in mious)} | {diff} | "
                     f"{seconds} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text)


if __name__ == "__main__":
    main()
