"""Datasets (embedded DigitScenes, Cityscapes), their builder and segmentation metrics."""

from qnas.data.cityscapes import Cityscapes
from qnas.data.digits import DigitScenes, SceneDifficulty, digit_pools, make_scenes
from qnas.data.loaders import DATASET_KINDS, build_dataset, make_loader
from qnas.data.metrics import ConfusionMeter, confusion_matrix, iou_from_confusion, miou, pixel_accuracy

__all__ = [
    "Cityscapes",
    "ConfusionMeter",
    "DATASET_KINDS",
    "DigitScenes",
    "SceneDifficulty",
    "build_dataset",
    "confusion_matrix",
    "digit_pools",
    "iou_from_confusion",
    "make_loader",
    "make_scenes",
    "miou",
    "pixel_accuracy",
]
