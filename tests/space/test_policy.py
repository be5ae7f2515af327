from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qnas.config import load_config
from qnas.errors import GenomeError
from qnas.space import Policy, SearchSpace, policy_from_text, policy_to_text, read_policy, write_policy

ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_is_exact(small_space: SearchSpace, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for i in range(20):
        policy = Policy(f"p{i}", small_space.sample(rng), metrics={"miou": 0.5}, provenance={"seed": i})
        path = tmp_path / f"p{i}.yaml"
        write_policy(path, policy, small_space)
        back = read_policy(path, small_space)
        assert back == policy
        assert policy_to_text(back, small_space) == path.read_text()


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_shipped_uniform_policies(bits: int) -> None:
    for config in ("configs/digits.yaml", "configs/cityscapes.yaml"):
        space = SearchSpace(load_config(ROOT / config).space)
        policy = read_policy(ROOT / f"policies/uniform_w{bits}a{bits}.yaml", space)
        assert policy.genome == space.uniform(bits, 3, 6, 3)
        assert policy.name == f"uniform_w{bits}a{bits}"


def test_bad_policy_text(small_space: SearchSpace) -> None:
    with pytest.raises(GenomeError, match="not valid YAML"):
        policy_from_text("genome: [", small_space)
    with pytest.raises(GenomeError, match="unknown key 'genom'"):
        policy_from_text("genome: {}\ngenom: 1\n", small_space)
    with pytest.raises(GenomeError, match="'genome' mapping"):
        policy_from_text("name: x\n", small_space)
    with pytest.raises(GenomeError, match="policy file not found"):
        read_policy("/nonexistent/p.yaml", small_space)
