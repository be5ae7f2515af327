"""Cityscapes reader on a tiny fake tree: id mapping, ignore, resizing, city selection, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qnas.data.cityscapes import Cityscapes, label_lookup_table
from qnas.config import DataConfig
from qnas.data.registry import build_split
from qnas.errors import DataError

H, W = 16, 32
FRAMES = {"aachen": ["aachen_000000_000019", "aachen_000001_000019"], "bochum": ["bochum_000000_000313"]}


def _label_ids(index: int) -> np.ndarray:
    """Left half road (7), right half car (26), top row unlabeled (0), one license plate (-1 -> 255)."""
    ids = np.full((H, W), 7, dtype=np.uint8)
    ids[:, W // 2 :] = 26
    ids[0] = 0
    ids[H - 1, 0] = 255
    ids[H - 1, 1] = 33  # bicycle
    ids[H - 1, 2] = 6  # ground: not a train class
    ids[H - 2, index] = 24  # person, at a per-frame column
    return ids


def _write_tree(root: Path, split: str = "train") -> None:
    rng = np.random.default_rng(0)
    k = 0
    for city, frames in FRAMES.items():
        (root / "leftImg8bit" / split / city).mkdir(parents=True)
        (root / "gtFine" / split / city).mkdir(parents=True)
        for frame in frames:
            pixels = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png")
            labels = root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png"
            Image.fromarray(_label_ids(k)).save(labels)
            (root / "gtFine" / split / city / f"{frame}_gtFine_color.png").write_bytes(b"unused")
            k += 1


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _write_tree(tmp_path)
    return tmp_path


def test_lookup_table_matches_standard_ids() -> None:
    lut = label_lookup_table()
    assert lut.shape == (256,) and lut.dtype == np.uint8
    assert [int(lut[i]) for i in (7, 8, 11, 23, 24, 26, 31, 33)] == [0, 1, 2, 10, 11, 13, 16, 18]
    assert int(lut[0]) == int(lut[6]) == int(lut[34]) == int(lut[255]) == 255
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


def test_reads_images_and_maps_labels(tree: Path) -> None:
    ds = Cityscapes(tree, "train")
    assert len(ds) == 3 and ds.cities == ["aachen", "bochum"]
    assert ds.num_classes == 19 and ds.ignore_index == 255 and len(ds.class_names) == 19
    image, label = ds[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    raw = np.asarray(Image.open(ds.files[0][0]))
    assert torch.allclose(image, torch.from_numpy(raw.transpose(2, 0, 1).copy()).float() / 255)
    assert label.shape == (H, W) and label.dtype == torch.int64
    assert int(label[5, 3]) == 0 and int(label[5, W - 1]) == 13
    assert (label[0] == 255).all()
    assert int(label[H - 1, 0]) == 255 and int(label[H - 1, 1]) == 18 and int(label[H - 1, 2]) == 255
    assert int(label[H - 2, 0]) == 11


def test_resize_uses_nearest_for_labels(tree: Path) -> None:
    ds = Cityscapes(tree, "train", height=8, width=12)
    image, label = ds[1]
    assert image.shape == (3, 8, 12) and label.shape == (8, 12)
    assert set(torch.unique(label).tolist()) <= {0, 11, 13, 18, 255}  # no blended ids


def test_city_selection(tree: Path) -> None:
    held_out = Cityscapes(tree, "train", exclude_cities=["aachen"])
    assert held_out.cities == ["bochum"] and len(held_out) == 1
    only = Cityscapes(tree, "train", cities=["aachen"])
    assert only.cities == ["aachen"] and len(only) == 2
    with pytest.raises(DataError, match="'cologne' not found"):
        Cityscapes(tree, "train", cities=["cologne"])


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Cityscapes(tmp_path / "nowhere", "train")


def test_missing_split(tree: Path) -> None:
    with pytest.raises(DataError, match="leftImg8bit/val"):
        Cityscapes(tree, "val")


def test_no_images(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    with pytest.raises(DataError, match="no \\*_leftImg8bit.png images"):
        Cityscapes(tmp_path, "train")


def test_missing_label(tree: Path) -> None:
    (tree / "gtFine" / "train" / "bochum" / "bochum_000000_000313_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError, match="bochum_000000_000313_gtFine_labelIds.png is missing"):
        Cityscapes(tree, "train")


def test_half_given_size_is_rejected(tree: Path) -> None:
    with pytest.raises(DataError, match="height and width"):
        Cityscapes(tree, "train", height=8)


def test_registered_splits_hold_out_the_search_city(tree: Path) -> None:
    data = DataConfig(dataset="cityscapes", root=str(tree), train_size=(32, 64), eval_size=(32, 32),
                      search_val_city="bochum")
    train, search = build_split(data, "train"), build_split(data, "search")
    assert isinstance(train, Cityscapes) and train.cities == ["aachen"] and search.cities == ["bochum"]
    assert train[0][0].shape == (3, 32, 64) and search[0][1].shape == (32, 32)
    with pytest.raises(DataError, match="needs data.root"):
        build_split(DataConfig(dataset="cityscapes"), "train")
