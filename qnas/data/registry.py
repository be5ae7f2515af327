"""Registered datasets (``data.dataset`` in the config): how each one builds its splits.

``@register_dataset(name, class_names=..., ignore_index=...)`` registers a function
``build(data, split, height, width) -> Dataset`` over the config's ``data`` section, for the splits

- ``train``: what training draws from (built at ``data.train_size``);
- ``val``: the final validation split (``data.eval_size``);
- ``search``: the search-validation split, disjoint from both (``data.eval_size``).

Every dataset it builds yields ``(image float32 [3, H, W] in [0, 1], label int64 [H, W])`` with
labels in ``[0, len(class_names))`` or the ignore index, which it holds as ``ignore_index``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from qnas.errors import ConfigError

__all__ = ["DatasetKind", "DATASETS", "SPLITS", "register_dataset", "dataset_kind", "build_split",
           "check_data_config"]

SPLITS = ("train", "val", "search")


@dataclass(frozen=True)
class DatasetKind:
    name: str
    build: Callable[[Any, str, int, int], Dataset]
    class_names: Callable[[Any], tuple[str, ...]]
    ignore_index: Callable[[Any], int]


DATASETS: dict[str, DatasetKind] = {}


def register_dataset(name: str, *, class_names: Callable[[Any], tuple[str, ...]],
                     ignore_index: Callable[[Any], int] = lambda data: 255) -> Callable:
    """Register ``build(data, split, height, width)`` as dataset ``name``."""

    def decorate(build: Callable[[Any, str, int, int], Dataset]) -> Callable:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = DatasetKind(name, build, class_names, ignore_index)
        return build

    return decorate


def dataset_kind(name: str) -> DatasetKind:
    if name not in DATASETS:
        raise ConfigError(f"data.dataset: {name!r} is not allowed; allowed: {sorted(DATASETS)}")
    return DATASETS[name]


def build_split(data: Any, split: str) -> Dataset:
    """Split ``split`` of the config's dataset, at the config's training or evaluation size."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    size = data.train_size if split == "train" else data.eval_size
    return dataset_kind(data.dataset).build(data, split, *size)


def check_data_config(config: Any) -> None:
    """The config's dataset exists and its class count matches ``space.num_classes``."""
    classes = len(dataset_kind(config.data.dataset).class_names(config.data))
    if config.space.num_classes != classes:
        raise ConfigError(f"space.num_classes: {config.space.num_classes} does not match data.dataset "
                          f"{config.data.dataset!r}, which has {classes} classes")
