"""A folder of images and PNG masks: any segmentation dataset laid out as

    root/images/{train,val}/NAME.png|.jpg|.jpeg
    root/masks/{train,val}/NAME.png

with matching stems. A mask holds class ids: a palette ("P") PNG is read as its palette indices (not
its colours), a grayscale ("L") PNG as its values. Ids run from 0 to ``len(data.class_names) - 1``;
``data.ignore_index`` marks pixels that belong to no class. The search-validation split is a seeded
(``data.seed``) share ``data.search_fraction`` of the train stems; training keeps the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from qnas.data.registry import register_dataset
from qnas.errors import ConfigError, DataError

__all__ = ["FolderDataset", "FolderListing", "IMAGE_SUFFIXES", "MASK_MODES", "check_folder_config", "folder_listing",
           "folder_splits", "folder_survey", "search_stems"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_MODES = ("L", "P", "1", "I", "I;16")  # single-channel PNGs whose values are the class ids
_DATA_CHECK = "qnas data-check lists every defect"


def check_folder_config(data: Any) -> None:
    """``data.root`` and ``data.class_names`` are given (ConfigError naming the key otherwise)."""
    if data.root is None:
        raise ConfigError("data.root: data.dataset 'folder' needs the folder holding images/ and masks/")
    if not data.class_names:
        raise ConfigError("data.class_names: data.dataset 'folder' needs the class names, one per mask id "
                          "from 0 (their count is space.num_classes)")


@dataclass(frozen=True)
class FolderListing:
    """The (image, mask) pairs of one folder split, sorted by stem, and what does not pair up."""

    pairs: tuple[tuple[Path, Path], ...]
    defects: tuple[str, ...]


def folder_listing(root: str | Path, folder: str) -> FolderListing:
    """Pairs of ``images/FOLDER`` and ``masks/FOLDER`` by stem; a missing folder is a DataError, an image
    without a mask, a mask without an image or two images with one stem is a defect naming the file."""
    root = Path(root)
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"data.root {root} {state}; expected a folder holding images/ and masks/")
    image_dir, mask_dir = root / "images" / folder, root / "masks" / folder
    for where in (image_dir, mask_dir):
        if not where.is_dir():
            raise DataError(f"{where} does not exist; expected the {where.parent.name} of split {folder!r}")
    images: dict[str, Path] = {}
    defects = []
    for path in sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        if path.stem in images:
            defects.append(f"{path}: {images[path.stem].name} has the same stem; keep one image per mask")
        else:
            images[path.stem] = path
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {image_dir}")
    masks = {p.stem: p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png"}
    for stem in sorted(set(images) - set(masks)):
        defects.append(f"{images[stem]}: no mask; expected {mask_dir / (stem + '.png')}")
    for stem in sorted(set(masks) - set(images)):
        defects.append(f"{masks[stem]}: no image; expected {image_dir / stem}"
                       f" with one of the suffixes {', '.join(IMAGE_SUFFIXES)}")
    pairs = tuple((images[s], masks[s]) for s in sorted(set(images) & set(masks)))
    return FolderListing(pairs, tuple(defects))


def search_stems(stems: list[str], fraction: float, seed: int) -> set[str]:
    """The stems held out for search validation: a seeded permutation's first ``round(fraction * n)`` (at
    least one, and at least one left for training)."""
    if len(stems) < 2:
        raise DataError(f"the train split has {len(stems)} image(s); holding out a search-validation split "
                        "(data.search_fraction) needs at least 2")
    count = min(len(stems) - 1, max(1, round(fraction * len(stems))))
    order = np.random.default_rng(seed).permutation(len(stems))
    return {stems[i] for i in order[:count]}


def _split_pairs(data: Any, split: str, strict: bool) -> FolderListing:
    """The listing of ``split``: val from images/val; train and search carved from images/train. ``strict``:
    the first defect is a DataError (pointing at data-check for the rest)."""
    listing = folder_listing(data.root, "val" if split == "val" else "train")
    if strict and listing.defects:
        more = len(listing.defects) - 1
        raise DataError(listing.defects[0] + (f" (and {more} more defects; {_DATA_CHECK})" if more else ""))
    if split == "val" or (listing.defects and len(listing.pairs) < 2):
        return listing
    held = search_stems([image.stem for image, _ in listing.pairs], data.search_fraction, data.seed)
    keep = tuple(p for p in listing.pairs if (p[0].stem in held) == (split == "search"))
    return FolderListing(keep, listing.defects)


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's ways to say "broken"
        reason = str(exc).replace(f" {str(path)!r}", "")  # the line names the file once
        raise DataError(f"{path}: cannot read the {what} ({reason})") from None
    return image


class FolderDataset(Dataset):
    """(image float32 [3, H, W] in [0, 1], mask int64 [H, W]) pairs read from files.

    With ``size`` (height, width) images are resized bilinearly and masks by nearest neighbour; without it
    each item keeps its own size. Reading an item checks its mask: single-channel, the image's size, every id
    a class or the ignore index; a DataError names the file otherwise.
    """

    def __init__(self, pairs: tuple[tuple[Path, Path], ...] | list[tuple[Path, Path]], class_names: tuple[str, ...],
                 ignore_index: int = 255, size: tuple[int, int] | None = None) -> None:
        self.files = list(pairs)
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.ignore_index = int(ignore_index)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[index]
        image = _open(image_path, "image").convert("RGB")  # grayscale, palette and RGBA images alike
        ids = self.read_mask(mask_path)
        if (ids.shape[1], ids.shape[0]) != image.size:
            raise DataError(f"{mask_path}: the mask is {ids.shape[1]}x{ids.shape[0]} pixels; expected the size of "
                            f"its image {image_path.name}, {image.size[0]}x{image.size[1]}")
        mask = Image.fromarray(ids)
        if self.size is not None:
            h, w = self.size
            image = image.resize((w, h), Image.BILINEAR)
            mask = mask.resize((w, h), Image.NEAREST)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy())
        return pixels.float().div_(255.0), torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())

    def read_mask(self, path: Path) -> np.ndarray:
        """The class ids of a mask file as uint8 [H, W]; DataError naming the file when they are not ids."""
        mask = _open(path, "mask")
        if mask.mode not in MASK_MODES:
            raise DataError(f"{path}: the mask has mode {mask.mode}; expected a single-channel PNG of class "
                            f"ids (mode L, or P read as palette indices)")
        ids = np.asarray(mask).astype(np.int64)
        bad = ((ids >= self.num_classes) & (ids != self.ignore_index)) | (ids < 0)
        if bad.any():
            found = np.unique(ids[bad])
            shown = ", ".join(map(str, found[:8])) + (", ..." if len(found) > 8 else "")
            raise DataError(f"{path}: mask ids {shown} are neither a class (0 to {self.num_classes - 1}) nor the "
                            f"ignore index {self.ignore_index}")
        return ids.astype(np.uint8)


def folder_survey(data: Any, split: str) -> tuple[FolderDataset, list[str]]:
    """For ``qnas data-check``: ``split`` at each file's own size over the files that pair up, and the
    listing's defects (files without a partner), instead of stopping at the first."""
    check_folder_config(data)
    listing = _split_pairs(data, split, strict=False)
    return FolderDataset(listing.pairs, data.class_names, data.ignore_index), list(listing.defects)


@register_dataset("folder", class_names=lambda data: data.class_names, ignore_index=lambda data: data.ignore_index,
                  check=check_folder_config, survey=folder_survey)
def folder_splits(data: Any, split: str, height: int, width: int) -> FolderDataset:
    """train: images/train but the held-out stems; search: those stems; val: images/val."""
    check_folder_config(data)
    listing = _split_pairs(data, split, strict=True)
    return FolderDataset(listing.pairs, data.class_names, data.ignore_index, (height, width))
