"""The application layer: one typed function per stage, the Python API that the CLI is a shell over.

    from qnas.config import load_config
    from qnas.pipeline import Context, train_supernet, search, export

    ctx = Context(load_config("configs/digits.yaml"))
    train_supernet(ctx, "runs/sn")
    best = search(ctx, "runs/sn", "runs/search", bitops_budget="0.5x:uniform_w8a8").best
    export(ctx, "runs/sn", best.genome, "ort", "runs/best_int8.onnx")

A config's ``deploy.target`` (``qnas.quant.targets``) gives every network these functions load or build
the numerics of that runtime: ``replace(config, deploy=replace(config.deploy, target="trt"))``.
"""

from qnas.pipeline.context import Context, is_main_process
from qnas.pipeline.data_check import DataCheck, check_data
from qnas.pipeline.exporting import ExportResult, export, export_model, inexact_convs, score_file
from qnas.pipeline.latency import latency_check, latency_table, load_table
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.run import policy_summary, run
from qnas.pipeline.runs import RunDir, load_trained, new_supernet, with_target
from qnas.pipeline.searching import (
    BASELINES, SearchResult, budget_constraints, compare, pick_winners, precision, search, seed_run,
)
from qnas.pipeline.sensitivity import bits_agreement, sensitivity
from qnas.pipeline.training import evaluate_policy, finetune, measure, train_baseline, train_supernet

__all__ = [
    "BASELINES", "SILENT", "Context", "DataCheck", "ExportResult", "Reporter", "RunDir", "SearchResult", "bits_agreement",
    "budget_constraints", "check_data", "compare", "evaluate_policy", "pick_winners", "seed_run", "sensitivity", "export", "export_model", "finetune", "inexact_convs", "is_main_process",
    "latency_check", "latency_table", "load_table", "load_trained", "measure", "new_supernet", "policy_summary",
    "precision", "run", "score_file", "search", "train_baseline", "train_supernet", "with_target",
]
