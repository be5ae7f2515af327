"""Datasets (registered: the embedded DigitScenes, Cityscapes, a folder of images and masks), loaders and
segmentation metrics."""

from qnas.data.cityscapes import Cityscapes
from qnas.data.digits import DigitScenes, SceneDifficulty, digit_pools, make_scenes
from qnas.data.folder import FolderDataset
from qnas.data.loaders import make_loader
from qnas.data.metrics import AgreementMeter, ConfusionMeter, confusion_matrix, iou_from_confusion, miou, pixel_accuracy
from qnas.data.registry import DATASETS, SPLITS, DatasetKind, build_split, check_data_config, dataset_kind, register_dataset

__all__ = [
    "DATASETS", "SPLITS", "AgreementMeter", "Cityscapes", "ConfusionMeter", "DatasetKind", "DigitScenes", "FolderDataset", "SceneDifficulty",
    "build_split", "check_data_config", "confusion_matrix", "dataset_kind", "digit_pools", "iou_from_confusion",
    "make_loader", "make_scenes", "miou", "pixel_accuracy", "register_dataset",
]
