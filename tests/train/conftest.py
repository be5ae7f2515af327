"""A tiny training setup: the small space, 32x32 scenes, one short epoch per stage."""

from __future__ import annotations

import pytest

from qnas.config import PhaseConfig, TrainConfig
from qnas.data import DigitScenes


@pytest.fixture(scope="session")
def tiny_scenes() -> DigitScenes:
    return DigitScenes("train", 24, 32, 32, seed=0)


@pytest.fixture(scope="session")
def tiny_train() -> TrainConfig:
    return TrainConfig(batch_size=4, warmup_epochs=1, phases=(
        PhaseConfig("full", 1, 2e-3, (4,)), PhaseConfig("all", 1, 1e-3, (2, 3, 4))),
        random_subnets=1, checkpoint_every=2, bn_calib_batches=2)
