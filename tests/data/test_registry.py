"""Every registered dataset builds its three splits with the declared shapes, classes and ignore index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qnas.config import Config, DataConfig
from qnas.data import DATASETS, SPLITS, build_split, check_data_config, dataset_kind
from qnas.errors import ConfigError
from qnas.space import SpaceSpec
from tests.data.fakes import FOLDER_CLASSES, write_folder


def _digits(tmp: Path) -> DataConfig:
    return DataConfig(dataset="digits", train_size=(32, 64), eval_size=(32, 32), train_scenes=3, val_scenes=2,
                      calib_scenes=2)


def _cityscapes(tmp: Path) -> DataConfig:
    rng = np.random.default_rng(0)
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("lindau",))):
        for city in cities:
            (tmp / "leftImg8bit" / split / city).mkdir(parents=True)
            (tmp / "gtFine" / split / city).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(
                tmp / "leftImg8bit" / split / city / f"{city}_0_0_leftImg8bit.png")
            ids = rng.choice(np.array([0, 7, 26, 255], np.uint8), (20, 40))
            Image.fromarray(ids).save(tmp / "gtFine" / split / city / f"{city}_0_0_gtFine_labelIds.png")
    return DataConfig(dataset="cityscapes", root=str(tmp), train_size=(32, 64), eval_size=(32, 32))


def _folder(tmp: Path) -> DataConfig:
    write_folder(tmp, train=4, val=2, height=20, width=40)
    return DataConfig(dataset="folder", root=str(tmp), class_names=FOLDER_CLASSES, train_size=(32, 64),
                      eval_size=(32, 32), search_fraction=0.25)


# One small example per registered dataset; a dataset registered without one fails test_every_dataset_has_an_example.
EXAMPLES: dict[str, Callable[[Path], DataConfig]] = {"digits": _digits, "cityscapes": _cityscapes, "folder": _folder}


def test_every_dataset_has_an_example() -> None:
    assert set(DATASETS) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_splits_yield_declared_shapes_classes_and_ignore_index(name: str, tmp_path: Path) -> None:
    data = EXAMPLES[name](tmp_path)
    kind = dataset_kind(name)
    classes, ignore = len(kind.class_names(data)), kind.ignore_index(data)
    for split in SPLITS:
        dataset = build_split(data, split)
        assert len(dataset) > 0 and dataset.ignore_index == ignore, split
        h, w = data.train_size if split == "train" else data.eval_size
        image, label = dataset[0]
        assert image.shape == (3, h, w) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
        assert label.shape == (h, w) and label.dtype == torch.int64
        values = set(label.unique().tolist())
        assert values <= set(range(classes)) | {ignore}, (split, values)


@pytest.mark.parametrize("name", sorted(n for n, kind in DATASETS.items() if kind.survey is not None))
def test_a_survey_of_a_clean_example_finds_no_defect_and_the_items_of_the_build(name: str, tmp_path: Path) -> None:
    data = EXAMPLES[name](tmp_path)
    for split in SPLITS:
        surveyed, defects = dataset_kind(name).survey(data, split)
        assert defects == [] and len(surveyed) == len(build_split(data, split)), split
        assert surveyed[0][1].dtype == torch.int64


def test_config_checks_the_class_count_and_the_name() -> None:
    check_data_config(Config())
    with pytest.raises(ConfigError, match="space.num_classes: 11 does not match data.dataset 'cityscapes'"):
        check_data_config(Config(data=DataConfig(dataset="cityscapes")))
    with pytest.raises(ConfigError, match="data.dataset: 'voc' is not allowed; allowed: \\['cityscapes', 'digits', 'folder'\\]"):
        check_data_config(Config(space=SpaceSpec(num_classes=19), data=DataConfig(dataset="voc")))
