"""Registered datasets (``data.dataset`` in the config): how each one builds its splits.

``@register_dataset(name, class_names=..., ignore_index=...)`` registers a function
``build(data, split, height, width) -> Dataset`` over the config's ``data`` section, for the splits

- ``train``: what training draws from (built at ``data.train_size``; at ``data.eval_size`` when
  ``data.augment.scale`` is set: the augmentation rescales and crops it to ``train_size``);
- ``val``: the final validation split (``data.eval_size``);
- ``search``: the search-validation split, disjoint from both (``data.eval_size``).

Every dataset it builds yields ``(image float32 [3, H, W] in [0, 1], label int64 [H, W])`` with
labels in ``[0, len(class_names))`` or the ignore index, which it holds as ``ignore_index``.

Optional hooks: ``check(data)`` raises a ConfigError naming a key the dataset needs (run with the
class-count check, before anything is read); ``survey(data, split) -> (dataset, defects)`` serves
``qnas data-check``: the split over the items that can be read at all, and one line per defect found
while listing them, where ``build`` would stop at the first.
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
    in_memory: bool = False  # True: items come from memory (no loader processes needed); False: read from files
    check: Callable[[Any], None] | None = None  # ConfigError naming a missing or bad key of the data section
    survey: Callable[[Any, str], tuple[Dataset, list[str]]] | None = None  # data-check's lenient build


DATASETS: dict[str, DatasetKind] = {}


def register_dataset(name: str, *, class_names: Callable[[Any], tuple[str, ...]],
                     ignore_index: Callable[[Any], int] = lambda data: 255, in_memory: bool = False,
                     check: Callable[[Any], None] | None = None,
                     survey: Callable[[Any, str], tuple[Dataset, list[str]]] | None = None) -> Callable:
    """Register ``build(data, split, height, width)`` as dataset ``name``."""

    def decorate(build: Callable[[Any, str, int, int], Dataset]) -> Callable:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = DatasetKind(name, build, class_names, ignore_index, in_memory, check, survey)
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
    size = data.train_size if split == "train" and data.augment.scale is None else data.eval_size
    return dataset_kind(data.dataset).build(data, split, *size)


def check_data_config(config: Any) -> None:
    """The config's dataset exists, has the keys it needs, and its class count matches ``space.num_classes``."""
    kind = dataset_kind(config.data.dataset)
    if kind.check is not None:
        kind.check(config.data)
    classes = len(kind.class_names(config.data))
    if config.space.num_classes != classes:
        raise ConfigError(f"space.num_classes: {config.space.num_classes} does not match data.dataset "
                          f"{config.data.dataset!r}, which has {classes} classes")
