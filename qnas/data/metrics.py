"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU and pixel accuracy.

Rows of the confusion matrix are target classes and columns are predictions; pixels labelled
``ignore_index`` are dropped. A class absent from both target and prediction has an undefined
IoU (NaN) and is left out of the mean, the usual convention for Cityscapes-style evaluation.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

__all__ = ["predicted_classes", "confusion_matrix", "iou_from_confusion", "miou", "pixel_accuracy", "ConfusionMeter", "AgreementMeter"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """The class of every pixel of logits [N, C, H, W]: the first largest logit, as ``argmax(1)`` gives it.

    ``max(1).indices`` returns the same indices (the first of equal maxima) about ten times faster than
    ``argmax(1)`` over the channels of an N, C, H, W tensor on a CPU (35 ms against 3.5 ms for 50 x 11 x
    64 x 64, 2 threads): evaluation spent a tenth of its time there."""
    return logits.max(1).indices


def _check_shapes(pred_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    if pred_shape != target_shape:
        raise ValueError(f"prediction shape {pred_shape} does not match target shape {target_shape}")


def _confusion_torch(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int
) -> np.ndarray:
    """Bincount on the tensors' device, so only the small matrix leaves a GPU."""
    if pred.dim() == target.dim() + 1:
        pred = predicted_classes(pred)
    _check_shapes(tuple(pred.shape), tuple(target.shape))
    p = pred.reshape(-1).long()
    t = target.reshape(-1).to(device=p.device).long()
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target values must lie in [0, {num_classes}) or equal {ignore_index}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"predictions must lie in [0, {num_classes})")
    counts = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu().numpy().astype(np.int64)


def confusion_matrix(
    pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Count (target, prediction) pairs: int64 [num_classes, num_classes], rows = target.

    ``pred`` holds class indices with the shape of ``target``, or scores with an extra class
    axis at dim 1 (then its argmax is used). Accepts numpy arrays or torch tensors.
    """
    if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor):
        return _confusion_torch(pred, target, num_classes, ignore_index)
    p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    if p.ndim == t.ndim + 1:
        p = p.argmax(axis=1)
    _check_shapes(p.shape, t.shape)
    p = p.reshape(-1).astype(np.int64)
    t = t.reshape(-1).astype(np.int64)
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target values must lie in [0, {num_classes}) or equal {ignore_index}")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predictions must lie in [0, {num_classes})")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU = correct / (seen + predicted - correct); NaN where a class never occurs."""
    cm = np.asarray(cm, dtype=np.float64)
    correct = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - correct
    iou = np.full(cm.shape[0], np.nan)
    np.divide(correct, union, out=iou, where=union > 0)
    return iou


def miou(cm: np.ndarray) -> float:
    """Mean IoU over the classes that occur (fraction in [0, 1]); NaN if none occurs."""
    iou = iou_from_confusion(cm)
    valid = ~np.isnan(iou)
    return float(iou[valid].mean()) if valid.any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Fraction of counted pixels predicted correctly; NaN for an empty matrix."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


class ConfusionMeter:
    """Accumulates a confusion matrix over batches and reports IoU metrics."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add one batch (class indices, or scores with a class axis at dim 1)."""
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def reset(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def per_class_iou(self) -> np.ndarray:
        return iou_from_confusion(self.matrix)

    def miou(self) -> float:
        return miou(self.matrix)

    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)


class AgreementMeter:
    """How one model's logits compare with a reference's on the same images: the share of pixels whose
    class agrees, the largest |logit difference|, and both models' confusion matrices against the labels
    (``meter`` for the compared model, ``reference`` for the reference)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.meter = ConfusionMeter(num_classes, ignore_index)
        self.reference = ConfusionMeter(num_classes, ignore_index)
        self.agree = self.total = 0
        self.max_diff = 0.0

    def update(self, out: ArrayLike, ref: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch: ``out`` and ``ref`` are logits [N, C, H, W], ``labels`` [N, H, W]."""
        out, ref = (np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a) for a in (out, ref))
        if out.shape != ref.shape:
            raise ValueError(f"compared logits {out.shape} and reference logits {ref.shape} differ in shape")
        pred, expected = out.argmax(1), ref.argmax(1)
        self.meter.update(pred, labels)
        self.reference.update(expected, labels)
        self.agree += int((pred == expected).sum())
        self.total += expected.size
        self.max_diff = max(self.max_diff, float(np.abs(ref - out).max()) if out.size else 0.0)

    def agreement(self) -> float:
        """The share of pixels (all pixels, labelled or not) whose class agrees; NaN before any update."""
        return self.agree / self.total if self.total else float("nan")
