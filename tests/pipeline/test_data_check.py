"""check_data on a dataset without a survey hook: items whose labels are not ids are defects naming the split
and the item; the others are counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils.data import Dataset

from qnas.config import Config, DataConfig
from qnas.data.registry import DATASETS, register_dataset
from qnas.pipeline import check_data
from qnas.space import SpaceSpec


class _TwoItems(Dataset):
    ignore_index = 255

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(3, 2, 2), torch.tensor([[0, 1], [7 if index else 2, 255]])


@pytest.fixture
def two_items() -> Iterator[str]:
    register_dataset("two-items", class_names=lambda data: ("a", "b", "c"))(lambda data, split, h, w: _TwoItems())
    yield "two-items"
    DATASETS.pop("two-items")


def test_items_outside_the_classes_are_defects_and_the_rest_is_counted(two_items: str) -> None:
    check = check_data(Config(space=SpaceSpec(num_classes=3), data=DataConfig(dataset=two_items)))
    assert check.defects == tuple(f"two-items {split} item 1: label ids [7] are neither a class (0 to 2) nor the "
                                  "ignore index 255" for split in ("train", "val", "search"))
    train = check.splits[0]
    assert (train.items, train.read, train.pixels, train.ignored) == (2, 1, (1, 1, 1), 1)
    assert train.shares() == [0.25] * 4 and check.absent("train") == []
