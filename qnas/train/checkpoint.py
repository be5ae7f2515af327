"""Training checkpoints: written atomically, read with ``weights_only=True``, checked for origin."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from qnas.errors import CheckpointError
from qnas.space.policy import atomic_write_bytes
from qnas.supernet.network import upgrade_state_dict

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "qnas-checkpoint/2"  # 2: modules named by conv label (qnas.supernet.network)
OLDER_FORMATS = ("qnas-checkpoint/1",)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: a kill at any moment leaves either the
    previous checkpoint or the new one, never half of one."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a qnas checkpoint (tensors and plain values only); a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of foreign objects, not a torch file at all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable qnas checkpoint (truncated or foreign?): "
                              f"{reason[:160]}") from None
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, *OLDER_FORMATS):
        raise CheckpointError(f"{path} is not a qnas checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if state["format"] != CHECKPOINT_FORMAT:  # qnas 0.1: module names of the hand-written network
        state["model"] = upgrade_state_dict(state.get("model", {}))
        if isinstance(state.get("space"), dict):
            state["space"].setdefault("network", "segnas")
        state["format"] = CHECKPOINT_FORMAT
    return state
