"""Plain training and evaluation of one (sub)network: the building block of every schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.data import ConfusionMeter

__all__ = ["poly_lr", "train_epochs", "evaluate"]


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    """The thesis's poly schedule: ``base_lr * (1 - step / total) ** power``."""
    return base_lr * (1.0 - min(step, total_steps) / max(total_steps, 1)) ** power


def train_epochs(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], epochs: int, lr: float, *,
                 ignore_index: int = 255, weight_decay: float = 4e-5, optimizer: str = "sgd",
                 on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """SGD with momentum (the thesis's) or Adam, poly LR, cross-entropy; returns every step's loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer {optimizer!r} is not allowed; allowed: ['sgd', 'adam']")
    total = epochs * len(loader)  # type: ignore[arg-type]
    losses, step = [], 0
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            for group in opt.param_groups:
                group["lr"] = poly_lr(lr, step, total)
            loss = F.cross_entropy(model(images), labels, ignore_index=ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if on_step is not None:
                on_step(step, losses[-1])
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], num_classes: int,
             ignore_index: int = 255) -> ConfusionMeter:
    """Confusion matrix of the model's argmax predictions over ``loader`` (eval mode)."""
    meter = ConfusionMeter(num_classes, ignore_index)
    was_training = model.training
    model.eval()
    for images, labels in loader:
        meter.update(model(images).argmax(1), labels)
    model.train(was_training)
    return meter
