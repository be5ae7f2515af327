"""Checkpoints are atomic and refuse what they cannot trust."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qnas.errors import CheckpointError
from qnas.train import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3.0)}, "position": {"step": 4}})
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.arange(3.0)) and state["position"] == {"step": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(1000)}})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or foreign"):
        load_checkpoint(path)


class _Foreign:
    pass


@pytest.mark.parametrize("payload", [{"w": torch.zeros(2)}, [1, 2]])
def test_foreign_checkpoint_is_a_clear_error(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "c.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="not a qnas checkpoint"):
        load_checkpoint(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"format": "qnas-checkpoint/1", "x": _Foreign()}, path)
    with pytest.raises(CheckpointError, match="truncated or foreign"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_checkpoint_of_qnas_0_1_loads_and_computes_what_it_did() -> None:
    """data/checkpoint_v1.pt was written by qnas 0.1 (modules stem / stages / highres / head / classifier)
    for a tiny space; its largest subnet's output on a fixed input was recorded then."""
    import hashlib

    from qnas.config import from_dict
    from qnas.space import SpaceSpec
    from qnas.supernet import build_supernet

    state = load_checkpoint(Path(__file__).parent / "data" / "checkpoint_v1.pt")
    assert state["format"] == "qnas-checkpoint/2" and state["space"]["network"] == "segnas"
    assert any(k.startswith("layers.s1.b0.pw1.") for k in state["model"])
    net = build_supernet(from_dict(SpaceSpec, state["space"]))
    net.load_state_dict(state["model"])
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net.eval()(x)
    assert hashlib.sha256(y.numpy().tobytes()).hexdigest() == (
        "67f04e0622c185112b9d233e1d17061916705bf641c17f8a064006eb01351835")
