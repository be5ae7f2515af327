"""Training loops (supernet schedules, QAT and distillation build on ``train_epochs``)."""

from qnas.train.loop import evaluate, poly_lr, train_epochs

__all__ = ["evaluate", "poly_lr", "train_epochs"]
