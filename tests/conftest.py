"""Shared fixtures: a small search space so supernet tests run quickly on 2 CPU cores."""

from __future__ import annotations

import os

import numpy as np
import pytest

from qnas.space import SearchSpace, SpaceSpec


@pytest.fixture(scope="session")
def small_spec() -> SpaceSpec:
    return SpaceSpec(stem_channels=(8, 12, 16), stem_strides=(2, 2, 1), stage_channels=(16, 24, 32), highres_channels=16,
                     head_channels=(16, 16))


@pytest.fixture(scope="session")
def small_space(small_spec: SpaceSpec) -> SearchSpace:
    return SearchSpace(small_spec)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """Tiny test networks run fastest on one thread, and CI's 2 cores are shared with pytest itself."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the commands the tests run in this process and in children


@pytest.fixture(scope="session")
def supernet_run(tmp_path_factory: pytest.TempPathFactory):
    """One tiny supernet run (tests/cli/tiny.yaml), shared by the tests that only read it."""
    from pathlib import Path

    from qnas.cli.main import main

    out = tmp_path_factory.mktemp("runs") / "supernet"
    tiny = str(Path(__file__).resolve().parent / "cli" / "tiny.yaml")
    assert main(["train", "--config", tiny, "--out", str(out), "--quiet"]) == 0
    return out
