"""Cut a subnet out of the supernet, recalibrate its BatchNorm, and measure it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from qnas.data.metrics import ConfusionMeter
from qnas.supernet.bn import recalibrate_bn
from qnas.supernet.freeze import freeze
from qnas.supernet.network import SegNet, Supernet
from qnas.train.loop import evaluate

__all__ = ["cut_subnet", "evaluate_subnet", "score", "SubnetScore", "SupernetEvaluator"]


def cut_subnet(supernet: Supernet, genome: Mapping[str, int], bn_images: Sequence[Tensor] | None) -> SegNet:
    """The static subnet of ``genome`` with its own BN statistics (when ``bn_images`` is given)."""
    subnet = freeze(supernet, genome)
    if bn_images is not None:
        recalibrate_bn(subnet, bn_images)
    subnet.eval()
    return subnet


class SubnetScore(dict):
    """``miou``, ``per_class_iou``, ``pixel_acc`` of one evaluation (JSON-ready values)."""


def score(meter: ConfusionMeter) -> SubnetScore:
    per_class = [None if v != v else float(v) for v in meter.per_class_iou()]  # NaN -> None (JSON null)
    return SubnetScore(miou=float(meter.miou()), per_class_iou=per_class, pixel_acc=float(meter.pixel_accuracy()))


def evaluate_subnet(supernet: Supernet, genome: Mapping[str, int], bn_images: Sequence[Tensor] | None,
                    loader: Iterable[tuple[Tensor, Tensor]], num_classes: int,
                    ignore_index: int | None = None) -> SubnetScore:
    """mIoU, per-class IoU and pixel accuracy of a cut, BN-recalibrated subnet on ``loader`` (labels equal
    to ``ignore_index``, by default the loader's dataset's, left out)."""
    with torch.no_grad():
        subnet = cut_subnet(supernet, genome, bn_images)
        return score(evaluate(subnet, loader, num_classes, ignore_index))


class SupernetEvaluator:
    """The search's fitness: mIoU of a cut, BN-recalibrated subnet on the search-validation split.

    ``costs(genome)`` adds whatever the search should record beside it (BitOps, latency, ...).
    """

    def __init__(self, supernet: Supernet, bn_images: Sequence[Tensor] | None, loader: Iterable[tuple[Tensor, Tensor]],
                 num_classes: int, costs: Callable[[Mapping[str, int]], Mapping[str, float]] | None = None,
                 ignore_index: int | None = None) -> None:
        self.supernet = supernet
        self.bn_images = bn_images
        self.loader = loader
        self.num_classes = num_classes
        self.costs = costs
        self.ignore_index = ignore_index

    def __call__(self, genome: Mapping[str, int]) -> dict[str, float]:
        result = evaluate_subnet(self.supernet, genome, self.bn_images, self.loader, self.num_classes,
                                 self.ignore_index)
        metrics = {"miou": result["miou"], "pixel_acc": result["pixel_acc"]}
        if self.costs is not None:
            metrics.update(self.costs(genome))
        return metrics
