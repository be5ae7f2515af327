"""Small fake datasets on disk, shared by the data, CLI and end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from qnas.data.cityscapes import LABEL_ID_TO_TRAIN_ID

__all__ = ["FOLDER_CLASSES", "PALETTE", "folder_masks", "write_cityscapes", "write_folder"]

FOLDER_CLASSES = ("background", "square", "disc")
PALETTE = [0, 0, 0, 200, 30, 30, 30, 200, 30] + [255, 255, 255] * 253  # colours unlike the ids


def folder_masks(n: int, height: int, width: int, seed: int = 0, ignore_index: int = 255) -> list[np.ndarray]:
    """Masks with a square (1) and a disc (2) on background (0), and an ignored border row."""
    rng = np.random.default_rng(seed)
    masks = []
    yy, xx = np.mgrid[:height, :width]
    for _ in range(n):
        ids = np.zeros((height, width), np.uint8)
        s = max(2, min(height, width) // 3)
        y, x = rng.integers(0, height - s), rng.integers(0, width - s)
        ids[y:y + s, x:x + s] = 1
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 < (s // 2) ** 2] = 2
        ids[0] = ignore_index
        masks.append(ids)
    return masks


def write_folder(root: Path, train: int = 6, val: int = 2, height: int = 24, width: int = 32, *, seed: int = 0,
                 palette: bool = True, ignore_index: int = 255) -> Path:
    """``root/images/{train,val}/NAME.png`` (RGB, coloured by class plus noise) and ``root/masks/...`` (palette
    PNGs unless ``palette`` is False: then grayscale)."""
    rng = np.random.default_rng(seed)
    colours = np.array([[20, 20, 20], [220, 60, 60], [60, 220, 60]], np.int16)
    for split, n in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for k, ids in enumerate(folder_masks(n, height, width, seed + (split == "val"), ignore_index)):
            name = f"{split}_{k:03d}"
            pixels = colours[np.minimum(ids, 2)] + rng.integers(-20, 21, (height, width, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "images" / split / f"{name}.png")
            mask = Image.fromarray(ids)  # mode L
            if palette:
                mask.putpalette(PALETTE)  # now mode P, its indices the ids
            mask.save(root / "masks" / split / f"{name}.png")
    return root


def write_cityscapes(root: Path, cities: dict[str, dict[str, int]], height: int = 32, width: int = 64,
                     seed: int = 0) -> Path:
    """The official layout with ``cities[split][city]`` frames each; label ids drawn from every train class's
    label id in horizontal bands, plus unlabeled (0) and license-plate (255 -> ignored) pixels."""
    rng = np.random.default_rng(seed)
    label_ids = np.array([label for label, _ in LABEL_ID_TO_TRAIN_ID], np.uint8)
    for split, frames in cities.items():
        for city, n in frames.items():
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                stem = f"{city}_{k:06d}_000019"
                bands = rng.choice(label_ids, size=height // 4)
                ids = np.repeat(bands, 4)[:, None].repeat(width, axis=1)
                ids[0, : width // 2] = 0
                ids[-1, :4] = 255
                pixels = (ids[..., None].astype(np.int16) * np.array([7, 3, 5]) % 256
                          + rng.integers(-10, 11, (height, width, 3)))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                    root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
                Image.fromarray(ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    return root
