"""Plain training and evaluation of one (sub)network: the building block of every schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.data import ConfusionMeter
from qnas.data.metrics import predicted_classes

__all__ = ["poly_lr", "train_epochs", "evaluate", "loader_ignore_index"]


def loader_ignore_index(loader: object, ignore_index: int | None = None) -> int:
    """``ignore_index`` if given, else the one the loader's dataset declares."""
    if ignore_index is not None:
        return int(ignore_index)
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "ignore_index"):
        raise ValueError("the loader's dataset declares no ignore_index; pass ignore_index")
    return int(dataset.ignore_index)


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    """The thesis's poly schedule: ``base_lr * (1 - step / total) ** power``."""
    return base_lr * (1.0 - min(step, total_steps) / max(total_steps, 1)) ** power


def train_epochs(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], epochs: int, lr: float, *,
                 ignore_index: int | None = None, weight_decay: float = 4e-5, optimizer: str = "sgd",
                 on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """SGD with momentum (the thesis's) or Adam, poly LR, cross-entropy (labels equal to the dataset's
    ignore index left out); returns every step's loss."""
    ignore_index = loader_ignore_index(loader, ignore_index)
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
             ignore_index: int | None = None) -> ConfusionMeter:
    """Confusion matrix of the model's argmax predictions over ``loader`` (eval mode); labels equal to
    ``ignore_index`` (default: the loader's dataset's ``ignore_index``) are left out."""
    meter = ConfusionMeter(num_classes, loader_ignore_index(loader, ignore_index))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for images, labels in loader:
        meter.update(predicted_classes(model(images.to(device, non_blocking=True))), labels)
    model.train(was_training)
    return meter
