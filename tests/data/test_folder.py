"""The folder dataset on tiny trees: palette and grayscale masks as ids, the ignore index, the search split
carved from train, RGB from any image mode, and one DataError naming the file for each defect."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qnas.config import Config, DataConfig
from qnas.data.folder import FolderDataset, folder_listing, folder_survey, search_stems
from qnas.data.registry import build_split, check_data_config
from qnas.errors import ConfigError, DataError
from qnas.space import SpaceSpec
from tests.data.fakes import FOLDER_CLASSES, PALETTE, folder_masks, write_folder

H, W = 24, 32


def _data(root: Path, **changes) -> DataConfig:
    return DataConfig(dataset="folder", root=str(root), class_names=FOLDER_CLASSES, train_size=(32, 32),
                      eval_size=(32, 64), **changes)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "folder", train=8, val=2, height=H, width=W)


def _native(root: Path, split: str = "train", **changes) -> FolderDataset:
    return folder_survey(_data(root, **changes), split)[0]


def test_palette_masks_are_read_as_their_indices(root: Path) -> None:
    mask_path = root / "masks" / "train" / "train_000.png"
    assert Image.open(mask_path).mode == "P"
    dataset = FolderDataset([(root / "images" / "train" / "train_000.png", mask_path)], FOLDER_CLASSES)
    _, label = dataset[0]
    expected = folder_masks(1, H, W)[0]
    assert label.dtype == torch.int64 and label.shape == (H, W)
    assert np.array_equal(label.numpy(), expected)  # the ids, not the palette's colours (200, 30, ...)
    assert set(label.unique().tolist()) == {0, 1, 2, 255}


def test_grayscale_masks_are_read_as_their_values(tmp_path: Path) -> None:
    root = write_folder(tmp_path, train=2, val=1, height=H, width=W, palette=False)
    assert Image.open(root / "masks" / "val" / "val_000.png").mode == "L"
    _, label = _native(root, "val")[0]
    assert np.array_equal(label.numpy(), folder_masks(1, H, W, seed=1)[0])


def test_an_ignore_index_of_the_config_is_kept_and_others_are_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path, train=2, val=1, height=H, width=W, ignore_index=100)
    data = _data(root, ignore_index=100)
    _, label = build_split(data, "val")[0]
    assert set(label.unique().tolist()) == {0, 1, 2, 100} and build_split(data, "val").ignore_index == 100
    with pytest.raises(DataError, match=r"val_000.png: mask ids 100 are neither a class \(0 to 2\) nor the ignore index 255"):
        build_split(_data(root), "val")[0]


def test_splits_resize_images_bilinear_and_masks_nearest(root: Path) -> None:
    data = _data(root)
    image, label = build_split(data, "train")[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert label.shape == (32, 32) and set(label.unique().tolist()) <= {0, 1, 2, 255}  # no blended ids
    image, label = build_split(data, "val")[1]
    assert image.shape == (3, 32, 64) and label.shape == (32, 64)


def test_search_split_is_a_seeded_disjoint_share_of_train(root: Path) -> None:
    data = _data(root, search_fraction=0.25)
    train, search = build_split(data, "train"), build_split(data, "search")
    train_stems = {image.stem for image, _ in train.files}
    search_stems_ = {image.stem for image, _ in search.files}
    assert len(search_stems_) == 2 and len(train_stems) == 6 and not train_stems & search_stems_
    assert train_stems | search_stems_ == {f"train_{k:03d}" for k in range(8)}
    assert {image.stem for image, _ in build_split(data, "search").files} == search_stems_  # deterministic
    held = [frozenset(search_stems(sorted(train_stems | search_stems_), 0.25, seed)) for seed in range(6)]
    assert len(set(held)) > 1  # data.seed chooses which
    assert [image.stem for image, _ in build_split(data, "val").files] == ["val_000", "val_001"]


def test_search_split_keeps_one_image_each_way() -> None:
    assert len(search_stems(["a", "b"], 0.9, 0)) == 1 and len(search_stems(["a", "b", "c"], 0.01, 0)) == 1
    with pytest.raises(DataError, match="train split has 1 image"):
        search_stems(["a"], 0.5, 0)


def test_a_missing_mask_names_the_image(root: Path) -> None:
    (root / "masks" / "train" / "train_003.png").unlink()
    with pytest.raises(DataError, match=r"images/train/train_003.png: no mask; expected .*masks/train/train_003.png"):
        build_split(_data(root), "train")
    listing = folder_listing(root, "train")
    assert len(listing.pairs) == 7 and len(listing.defects) == 1


def test_every_unpaired_file_is_listed_and_the_build_points_to_data_check(root: Path) -> None:
    (root / "masks" / "train" / "train_003.png").unlink()
    (root / "masks" / "train" / "stray.png").write_bytes(b"")
    Image.new("RGB", (W, H)).save(root / "images" / "train" / "train_000.jpg")
    defects = folder_listing(root, "train").defects
    assert len(defects) == 3
    assert any("train_000.png: train_000.jpg has the same stem; keep one image per mask" in d for d in defects)
    assert any("masks/train/stray.png: no image" in d for d in defects)
    with pytest.raises(DataError, match="and 2 more defects; qnas data-check lists every defect"):
        build_split(_data(root), "search")


def test_a_mask_of_another_size_names_the_mask(root: Path) -> None:
    mask = root / "masks" / "val" / "val_001.png"
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(mask)
    dataset = build_split(_data(root), "val")
    dataset[0]
    with pytest.raises(DataError, match=rf"{mask}: the mask is 33x24 pixels; expected the size of its image "
                                        r"val_001.png, 32x24"):
        dataset[1]


def test_an_id_outside_the_classes_names_the_mask(root: Path) -> None:
    mask = root / "masks" / "val" / "val_000.png"
    ids = folder_masks(1, H, W, seed=1)[0]
    ids[5, 5], ids[6, 6] = 3, 7
    image = Image.fromarray(ids)
    image.putpalette(PALETTE)
    image.save(mask)
    with pytest.raises(DataError, match=rf"{mask}: mask ids 3, 7 are neither a class \(0 to 2\) nor the ignore index 255"):
        build_split(_data(root), "val")[0]


def test_an_rgb_mask_or_an_unreadable_file_names_the_file(root: Path) -> None:
    mask = root / "masks" / "val" / "val_000.png"
    Image.open(mask).convert("RGB").save(mask)
    image = root / "images" / "val" / "val_001.png"
    image.write_bytes(b"not a png")
    dataset = build_split(_data(root), "val")
    with pytest.raises(DataError, match=rf"{mask}: the mask has mode RGB; expected a single-channel PNG"):
        dataset[0]
    with pytest.raises(DataError, match=rf"{image}: cannot read the image"):
        dataset[1]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_any_image_mode_loads_as_rgb(root: Path, mode: str) -> None:
    image = root / "images" / "val" / "val_000.png"
    Image.open(image).convert(mode).save(image)
    jpg = root / "images" / "val" / "val_001.jpg"
    Image.open(root / "images" / "val" / "val_001.png").convert("RGB").save(jpg)
    (root / "images" / "val" / "val_001.png").unlink()
    dataset = _native(root, "val")
    assert [image.name for image, _ in dataset.files] == ["val_000.png", "val_001.jpg"]
    for k in range(2):
        pixels, label = dataset[k]
        assert pixels.shape == (3, H, W) and label.shape == (H, W)


def test_missing_folders(tmp_path: Path, root: Path) -> None:
    with pytest.raises(DataError, match="data.root .*nowhere does not exist; expected a folder holding images/ and masks/"):
        build_split(_data(tmp_path / "nowhere"), "train")
    for part in ("images", "masks"):
        (root / part / "val").rename(root / part / "held")
        with pytest.raises(DataError, match=rf"{part}/val does not exist"):
            build_split(_data(root), "val")
        (root / part / "held").rename(root / part / "val")
    for path in (root / "images" / "val").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no images .* found in .*images/val"):
        build_split(_data(root), "val")


def test_config_needs_the_root_and_the_class_names(tmp_path: Path) -> None:
    space = SpaceSpec(num_classes=3)
    check_data_config(Config(space=space, data=_data(tmp_path)))
    with pytest.raises(ConfigError, match="^data.root: data.dataset 'folder' needs the folder holding images/ and masks/$"):
        check_data_config(Config(space=space, data=replace(_data(tmp_path), root=None)))
    with pytest.raises(ConfigError, match="^data.class_names: data.dataset 'folder' needs the class names"):
        check_data_config(Config(space=space, data=replace(_data(tmp_path), class_names=())))
    with pytest.raises(ConfigError, match="space.num_classes: 11 does not match data.dataset 'folder', which has 3 classes"):
        check_data_config(Config(data=_data(tmp_path)))
    with pytest.raises(ConfigError, match="^data.root"):
        build_split(replace(_data(tmp_path), root=None), "val")
