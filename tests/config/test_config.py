from __future__ import annotations

from pathlib import Path

import pytest

from qnas.config import Config, from_dict, load_config
from qnas.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_configs_load() -> None:
    digits = load_config(ROOT / "configs/digits.yaml")
    assert digits.data.dataset == "digits" and digits.space.num_classes == 11
    city = load_config(ROOT / "configs/cityscapes.yaml")
    assert city.space.stem_channels == (32, 48, 64) and city.deploy.width == 2048
    assert city.search.population == 100 and city.search.generations == 10  # the thesis's evolution
    full = load_config(ROOT / "configs/digits-full.yaml")
    assert full.space == digits.space and full.deploy == digits.deploy  # policies and tables carry over
    assert full.train.finetune_epochs > digits.train.finetune_epochs
    assert not digits.data.augment.enabled and digits.train.amp == "off"  # the default task is not augmented
    assert city.data.augment.scale == (0.5, 2.0) and city.data.augment.flip == 0.5  # the standard recipe


@pytest.mark.parametrize(
    "data, message",
    [
        ({"space": {"stem_chanels": [1, 2, 3]}}, "space.stem_chanels: unknown key"),
        ({"data": {"augment": {"scale": [2.0, 0.5]}}}, r"data.augment.scale: must be \[LOW, HIGH\]"),
        ({"data": {"augment": {"flip": 1.5}}}, "data.augment.flip: must be a probability"),
        ({"data": {"augment": {"rotate": 10}}}, "data.augment.rotate: unknown key"),
        ({"data": {"class_names": ["a", "b"], "ignore_index": 1}}, "data.ignore_index: 1 is a class id"),
        ({"data": {"search_fraction": 1.0}}, "data.search_fraction: must be between 0 and 1"),
        ({"data": {"workers": -1}}, "data.workers: must be >= 0"),
        ({"train": {"amp": "fp8"}}, r"train.amp: 'fp8' is not allowed; allowed: \['off', 'bf16', 'fp16'\]"),
        ({"space": {"stage_channels": [16, "wide", 32]}}, r"space.stage_channels\[1\]: expected an integer"),
        ({"space": {"bits": [4, 9]}}, r"space.bits: 9 is not allowed"),
        ({"space": {"stem_channels": [1, 2]}}, "space.stem_channels: expected 3 values"),
        ({"data": {"train_size": [60, 64]}}, "data.train_size: sizes must be multiples of 32"),
        ({"deploy": {"height": True}}, "deploy.height: expected an integer"),
        ({"quant": {"act_init_clip": -1}}, "quant.act_init_clip: must be > 0"),
        ({"trian": {}}, "trian: unknown key"),
        ({"space": 3}, "space: expected a mapping"),
    ],
)
def test_errors_name_the_key_path(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Config, data)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs/digits.yaml")
    path = tmp_path / "resolved.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
