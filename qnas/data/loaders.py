"""One entry point that builds a dataset by kind, and a seeded DataLoader helper.

The config layer names a dataset kind and a resolution; these functions turn that into a
``Dataset`` (resolution passed through, never stored as class state) and a ``DataLoader``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from qnas.data.cityscapes import Cityscapes
from qnas.data.digits import DigitScenes
from qnas.errors import DataError

__all__ = ["DATASET_KINDS", "build_dataset", "make_loader"]

DATASET_KINDS: tuple[str, ...] = ("digits", "cityscapes")


def build_dataset(
    kind: str,
    split: str,
    height: int,
    width: int,
    *,
    n: int | None,
    seed: int,
    root: str | None,
    **kwargs: Any,
) -> Dataset:
    """Build a 'digits' (DigitScenes; needs ``n``) or 'cityscapes' (needs ``root``) dataset.

    ``kwargs`` go to the dataset: difficulty knobs for digits, ``cities`` /
    ``exclude_cities`` for Cityscapes. ``seed`` only affects generated data.
    """
    if kind == "digits":
        if n is None:
            raise DataError("dataset kind 'digits' needs n, the number of scenes to generate")
        return DigitScenes(split, n, height, width, seed=seed, **kwargs)
    if kind == "cityscapes":
        if root is None:
            raise DataError("dataset kind 'cityscapes' needs root, the folder with leftImg8bit/ and gtFine/")
        return Cityscapes(root, split, height, width, **kwargs)
    raise DataError(f"unknown dataset kind {kind!r}; allowed: {list(DATASET_KINDS)}")


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling order comes from its own generator seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )
