"""DigitScenes: determinism, disjoint digit pools, label statistics, shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qnas.data.digits import POOLS, DigitScenes, SceneDifficulty, digit_pools, make_scenes
from qnas.errors import DataError, FieldError


@pytest.fixture(scope="module")
def train_scenes() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    return make_scenes(300, 64, 64, "train", seed=5, return_sources=True)


def test_pools_are_disjoint_cover_all_and_stratified() -> None:
    pools = digit_pools(0)
    assert set(pools) == set(POOLS)
    sets = [set(pools[name].tolist()) for name in POOLS]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == 1797
    assert abs(len(pools["train"]) / 1797 - 0.6) < 0.01
    from sklearn.datasets import load_digits

    targets = load_digits().target
    for name in POOLS:
        assert set(targets[pools[name]].tolist()) == set(range(10))


def test_pools_are_deterministic_per_seed() -> None:
    a, b, c = digit_pools(3), digit_pools(3), digit_pools(4)
    assert all(np.array_equal(a[k], b[k]) for k in POOLS)
    assert not np.array_equal(a["train"], c["train"])


def test_pools_reject_bad_fractions() -> None:
    with pytest.raises(DataError, match="fractions"):
        digit_pools(0, fractions=(0.5, 0.5, 0.5))


def test_scenes_are_deterministic_and_seed_dependent() -> None:
    a_img, a_lab = make_scenes(6, 32, 32, "val", seed=1)
    b_img, b_lab = make_scenes(6, 32, 32, "val", seed=1)
    c_img, c_lab = make_scenes(6, 32, 32, "val", seed=2)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_lab, c_lab)


def test_longer_run_extends_shorter_run() -> None:
    short_img, short_lab = make_scenes(3, 32, 32, "train", seed=9)
    long_img, long_lab = make_scenes(5, 32, 32, "train", seed=9)
    assert np.array_equal(short_img, long_img[:3]) and np.array_equal(short_lab, long_lab[:3])


def test_dataset_is_deterministic() -> None:
    a, b = DigitScenes("train", 4, 32, 32, seed=7), DigitScenes("train", 4, 32, 32, seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, DigitScenes("train", 4, 32, 32, seed=8).images)


@pytest.mark.parametrize("pool", POOLS)
def test_scenes_use_only_their_pool(pool: str) -> None:
    _, _, sources = make_scenes(40, 48, 48, pool, seed=0, return_sources=True)
    used = np.concatenate(sources)
    assert used.size > 0
    assert np.isin(used, digit_pools(0)[pool]).all()


def test_train_scenes_use_only_train_digits(train_scenes) -> None:
    used = np.concatenate(train_scenes[2])
    pools = digit_pools(0)
    assert np.isin(used, pools["train"]).all()
    assert not np.isin(used, np.concatenate([pools["val"], pools["calib"]])).any()


def test_label_statistics(train_scenes) -> None:
    images, labels, _ = train_scenes
    assert images.dtype == np.uint8 and images.shape == (300, 3, 64, 64)
    assert labels.shape == (300, 64, 64) and labels.max() <= 10
    assert set(np.unique(labels).tolist()) == set(range(11))
    background = float((labels == 0).mean())
    assert 0.4 <= background <= 0.9
    assert images.std() > 20  # cluttered, not flat


def test_dataset_items_shapes_dtypes_and_attributes() -> None:
    ds = DigitScenes("calib", 3, 48, 80, seed=0)
    image, label = ds[2]
    assert len(ds) == 3
    assert image.shape == (3, 48, 80) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert label.shape == (48, 80) and label.dtype == torch.int64
    assert torch.equal(image, ds.images[2].float() / 255)
    assert ds.num_classes == 11 and ds.ignore_index == 255
    assert ds.class_names == ("background",) + tuple(str(d) for d in range(10))


@pytest.mark.parametrize("size", [(48, 80), (37, 21), (16, 16), (128, 96)])
def test_odd_resolutions(size: tuple[int, int]) -> None:
    images, labels = make_scenes(4, *size, "train", seed=0)
    assert images.shape == (4, 3, *size) and labels.shape == (4, *size)
    assert (labels > 0).any()


def test_object_counts_scale_with_area() -> None:
    _, small, small_src = make_scenes(20, 32, 32, "train", seed=0, return_sources=True)
    _, large, large_src = make_scenes(20, 128, 128, "train", seed=0, return_sources=True)
    assert np.mean([len(s) for s in large_src]) > 4 * np.mean([len(s) for s in small_src])


def test_difficulty_knobs_change_scenes() -> None:
    easy_img, easy_lab = make_scenes(4, 32, 32, "val", seed=0, clutter=0.0, strokes=(0, 0), noise=0.0)
    hard_img, _ = make_scenes(4, 32, 32, "val", seed=0)
    assert not np.array_equal(easy_img, hard_img)
    no_digits = make_scenes(3, 32, 32, "val", seed=0, digits=(0, 0))[1]
    assert not no_digits.any()


def test_difficulty_accepts_lists_and_validates() -> None:
    assert SceneDifficulty(digits=[1, 3]).digits == (1, 3)
    with pytest.raises(FieldError, match="contrast"):
        SceneDifficulty(contrast=(0.8, 0.2))
    with pytest.raises(FieldError, match="clutter"):
        SceneDifficulty(clutter=-1)


def test_unknown_split_and_knob_raise_data_error() -> None:
    with pytest.raises(DataError, match="allowed: \\['train', 'val', 'calib'\\]"):
        DigitScenes("test", 2, 32, 32)
    with pytest.raises(DataError, match="clutterr"):
        make_scenes(2, 32, 32, "train", 0, clutterr=0.5)
    with pytest.raises(DataError):
        make_scenes(2, 4, 32, "train", 0)


def test_classes_knob_restricts_the_digits() -> None:
    from qnas.data import DigitScenes
    from qnas.errors import DataError

    ds = DigitScenes("train", 20, 48, 48, seed=0, classes=(3, 7))
    assert set(torch.unique(ds.labels).tolist()) <= {0, 4, 8}
    with pytest.raises(DataError, match="classes"):
        DigitScenes("train", 2, 48, 48, seed=0, classes=(3, 11))
