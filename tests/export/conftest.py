"""A small trained supernet shared by the export tests, and the genomes they export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qnas.config import PhaseConfig, TrainConfig
from qnas.data import DigitScenes
from qnas.space import SearchSpace
from qnas.supernet import build_supernet
from qnas.train import Trainer, supernet_stages


@pytest.fixture(scope="package")
def trained(small_space: SearchSpace, tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    data = DigitScenes("train", 48, 48, 48, seed=0)
    cfg = TrainConfig(batch_size=8, warmup_epochs=2, phases=(PhaseConfig("all", 3, 2e-3, (2, 3, 4)),),
                      random_subnets=1, checkpoint_every=1000)
    supernet = build_supernet(small_space.spec)
    Trainer(supernet, supernet_stages(cfg, small_space), cfg, data, seed=0,
            checkpoint_path=tmp_path_factory.mktemp("export") / "c.pt").run()
    images = [torch.stack([data[i][0] for i in range(b, b + 8)]) for b in range(0, 24, 8)]
    return supernet.eval(), images, DigitScenes("val", 6, 48, 48, seed=0)



def export_genomes(space: SearchSpace) -> list:
    """The extremes, a uniform 4-bit subnet and random mixed-precision ones."""
    rng = np.random.default_rng(5)
    return [space.largest(), space.smallest(), space.uniform(4, 3, 6, 3)] + [space.sample(rng) for _ in range(3)]
