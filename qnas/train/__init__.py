"""Training: schedules as data, the sandwich/distillation trainer, checkpoints, subnet evaluation."""

from qnas.train.checkpoint import load_checkpoint, save_checkpoint
from qnas.train.loop import evaluate, poly_lr, train_epochs
from qnas.train.schedule import Stage, baseline_stages, finetune_stages, step_genomes, supernet_stages
from qnas.train.subnet import SubnetScore, SupernetEvaluator, cut_subnet, evaluate_subnet, score
from qnas.train.trainer import Position, Trainer, TrainMonitor, batch_indices, distill_loss

__all__ = [
    "Position", "Stage", "SubnetScore", "SupernetEvaluator", "TrainMonitor", "Trainer", "baseline_stages", "batch_indices",
    "cut_subnet", "distill_loss", "evaluate", "evaluate_subnet", "finetune_stages", "load_checkpoint",
    "poly_lr", "save_checkpoint", "score", "step_genomes", "supernet_stages", "train_epochs",
]
