"""Cityscapes semantic segmentation (fine annotations) with the 19 standard training classes.

Reads the official layout ``root/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with labels
``root/gtFine/{split}/{city}/*_gtFine_labelIds.png`` and maps label ids to train ids through a
256-entry lookup table; everything outside the 19 classes becomes ``ignore_index``. Cities can
be selected or held out, which is how the search-validation split is carved from train.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from qnas.data.registry import register_dataset
from qnas.errors import DataError

__all__ = ["CITYSCAPES_CLASS_NAMES", "LABEL_ID_TO_TRAIN_ID", "label_lookup_table", "Cityscapes", "cityscapes_splits"]

CITYSCAPES_CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
LABEL_ID_TO_TRAIN_ID: tuple[tuple[int, int], ...] = (
    (7, 0), (8, 1), (11, 2), (12, 3), (13, 4), (17, 5), (19, 6), (20, 7), (21, 8), (22, 9),
    (23, 10), (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (31, 16), (32, 17), (33, 18),
)  # fmt: skip
_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


def label_lookup_table(ignore_index: int = 255) -> np.ndarray:
    """uint8 [256] table mapping Cityscapes label ids to train ids (others -> ignore_index)."""
    lut = np.full(256, ignore_index, dtype=np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID:
        lut[label_id] = train_id
    return lut


def _list_pairs(
    root: Path, split: str, cities: Sequence[str] | None, exclude: Sequence[str] | None
) -> list[tuple[Path, Path]]:
    """Sorted (image, label) paths of the selected cities; DataError on a malformed tree."""
    if not root.is_dir():
        raise DataError(
            f"Cityscapes root {root} does not exist; expected a folder holding leftImg8bit/ and gtFine/"
        )
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise DataError(f"{image_dir} does not exist; expected the Cityscapes images of split {split!r}")
    available = sorted(p.name for p in image_dir.iterdir() if p.is_dir())
    for name in list(cities or []) + list(exclude or []):
        if name not in available:
            raise DataError(f"city {name!r} not found in {image_dir}; available: {available}")
    chosen = [c for c in available if (cities is None or c in cities) and c not in (exclude or [])]
    pairs = []
    for city in chosen:
        for image in sorted((image_dir / city).glob(f"*{_IMAGE_SUFFIX}")):
            stem = image.name[: -len(_IMAGE_SUFFIX)]
            label = root / "gtFine" / split / city / f"{stem}{_LABEL_SUFFIX}"
            if not label.is_file():
                raise DataError(f"label file {label} is missing; expected one for image {image}")
            pairs.append((image, label))
    if not pairs:
        raise DataError(f"no *{_IMAGE_SUFFIX} images found under {image_dir} for cities {chosen}")
    return pairs


class Cityscapes(Dataset):
    """Cityscapes split: (image float32 [3, H, W] in [0, 1], label int64 [H, W] train ids).

    With ``height`` and ``width`` images are resized bilinearly and labels by nearest
    neighbour; without them the native resolution is kept. ``cities`` keeps only those
    cities and ``exclude_cities`` drops some (e.g. hold out 'aachen' of train for search).
    """

    num_classes: int = 19
    class_names: tuple[str, ...] = CITYSCAPES_CLASS_NAMES
    ignore_index: int = 255

    def __init__(
        self,
        root: str | Path,
        split: str,
        height: int | None = None,
        width: int | None = None,
        cities: Sequence[str] | None = None,
        exclude_cities: Sequence[str] | None = None,
    ) -> None:
        if (height is None) != (width is None) or (height is not None and min(height, width) < 1):
            raise DataError(f"Cityscapes needs both height and width (>= 1) or neither; got {height}x{width}")
        self.root = Path(root)
        self.split = split
        self.size = None if height is None else (int(height), int(width))
        self.files = _list_pairs(self.root, split, cities, exclude_cities)
        self.cities = sorted({image.parent.name for image, _ in self.files})
        self._lut = label_lookup_table(self.ignore_index)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.files[index]
        image = Image.open(image_path).convert("RGB")
        label = Image.open(label_path)
        if label.mode not in ("L", "P"):
            label = Image.fromarray(np.clip(np.asarray(label), 0, 255).astype(np.uint8))
        if image.size != label.size:
            raise DataError(
                f"label {label_path} is {label.size[0]}x{label.size[1]} pixels; "
                f"expected the size of its image, {image.size[0]}x{image.size[1]}"
            )
        if self.size is not None:
            h, w = self.size
            image = image.resize((w, h), Image.BILINEAR)
            label = label.resize((w, h), Image.NEAREST)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy())
        train_ids = self._lut[np.asarray(label, dtype=np.uint8)]
        return pixels.float().div_(255.0), torch.from_numpy(train_ids.astype(np.int64))


@register_dataset("cityscapes", class_names=lambda data: CITYSCAPES_CLASS_NAMES)
def cityscapes_splits(data: Any, split: str, height: int, width: int) -> Cityscapes:
    """train: the train cities but ``data.search_val_city``; val: the val split; search: that held-out city."""
    if data.root is None:
        raise DataError("data.dataset 'cityscapes' needs data.root, the folder with leftImg8bit/ and gtFine/")
    city = (data.search_val_city,)
    if split == "train":
        return Cityscapes(data.root, "train", height, width, exclude_cities=city)
    if split == "search":
        return Cityscapes(data.root, "train", height, width, cities=city)
    return Cityscapes(data.root, "val", height, width)
