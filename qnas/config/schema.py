"""The experiment config: one frozen dataclass per YAML section."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Literal

from qnas.config.loader import dump_yaml, from_dict, load_yaml
from qnas.errors import ConfigError, FieldError
from qnas.space.spec import SpaceSpec

__all__ = ["Config", "DataConfig", "DeployConfig", "QuantConfig", "load_config", "config_hash"]

NUM_CLASSES = {"digits": 11, "cityscapes": 19}


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise FieldError(name, f"must be > 0, got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and at which size the network is trained and evaluated."""

    dataset: Literal["digits", "cityscapes"] = "digits"
    root: str | None = None  # Cityscapes root (leftImg8bit/ and gtFine/); unused for digits
    train_size: tuple[int, int] = (64, 64)  # height, width of training images / crops
    eval_size: tuple[int, int] = (64, 64)  # height, width at which val / calib are evaluated
    train_scenes: int = 2000  # DigitScenes only: number of generated scenes per split
    val_scenes: int = 400
    calib_scenes: int = 200
    search_val_city: str = "aachen"  # Cityscapes: the train city held out for search validation
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "eval_size"):
            for v in getattr(self, name):
                if v < 32 or v % 32:
                    raise FieldError(name, f"sizes must be multiples of 32 and >= 32, got {v}")
        for name in ("train_scenes", "val_scenes", "calib_scenes", "batch_size"):
            _positive(name, getattr(self, name))


@dataclass(frozen=True)
class DeployConfig:
    """The resolution the exported network runs at (latency table, export, reported cost)."""

    height: int = 128
    width: int = 256

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if v < 32 or v % 32:
                raise FieldError(name, f"must be a multiple of 32 and >= 32, got {v}")


@dataclass(frozen=True)
class QuantConfig:
    """How the fake quantizers start and learn."""

    act_init_clip: float = 4.0  # initial PACT clip alpha for every (layer, bit width)
    learn_weight_clip: bool = False  # False: per-channel max |w|; True: learned ratio of it

    def __post_init__(self) -> None:
        _positive("act_init_clip", self.act_init_clip)


@dataclass(frozen=True)
class Config:
    space: SpaceSpec = field(default_factory=SpaceSpec)
    data: DataConfig = field(default_factory=DataConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        expected = NUM_CLASSES[self.data.dataset]
        if self.space.num_classes != expected:
            raise FieldError(
                "space.num_classes", f"{self.space.num_classes} does not match data.dataset "
                f"{self.data.dataset!r}, which has {expected} classes",
            )

    def to_yaml(self) -> str:
        return dump_yaml(self)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config; errors name the offending key path."""
    data = load_yaml(path)
    try:
        return from_dict(Config, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_hash(config: Config) -> str:
    """Short stable hash of the resolved config (provenance of policies and runs)."""
    return hashlib.sha256(config.to_yaml().encode()).hexdigest()[:16]
