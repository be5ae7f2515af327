"""Run folders and trained networks: where a stage writes, and how a finished run is read back."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

from qnas.config import Config, config_difference, config_hash, from_dict, to_dict
from qnas.errors import CheckpointError, ConfigError, QnasError
from qnas.pipeline.context import is_main_process
from qnas.pipeline.lock import clean_temporary_files
from qnas.quant.modules import apply_target
from qnas.quant.targets import DEFAULT_TARGET
from qnas.space.genome import Genome, SearchSpace
from qnas.space.spec import SpaceSpec
from qnas.space.policy import atomic_write_text
from qnas.supernet.network import QuantSettings, Supernet, build_supernet
from qnas.train.checkpoint import load_checkpoint

__all__ = ["RunDir", "saved_config", "CHECKPOINT", "run_state", "new_supernet", "with_target", "load_trained", "genome_of", "checkpoint_file"]

CHECKPOINT = "checkpoint.pt"


def saved_config(path: Path) -> Config | None:
    """The config a run folder recorded (``config.yaml``); None if it cannot be read."""
    try:
        return from_dict(Config, yaml.safe_load(path.read_text()) or {})
    except (ConfigError, yaml.YAMLError, OSError, TypeError, AttributeError):
        return None


class RunDir:
    """A training output folder: ``config.yaml`` (resolved), ``checkpoint.pt``, ``train.log``, results."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT
        self.config = self.path / "config.yaml"
        self.log_file = self.path / "train.log"

    def _saved_config(self) -> Config | None:
        return saved_config(self.config)

    def prepare(self, config: Config, resume: bool) -> None:
        """Create the folder, refuse to overwrite a run unless resuming it with the same config."""
        if self.path.exists() and not self.path.is_dir():
            raise QnasError(f"--out {self.path} exists and is not a folder")
        if self.checkpoint.exists() and not resume:
            raise QnasError(f"{self.path} already holds a run; pass --resume to continue it, or choose another --out")
        saved = self._saved_config() if resume and self.config.exists() else config
        if saved is None or saved != config:
            difference = "its config.yaml is unreadable" if saved is None else config_difference(saved, config)
            raise QnasError(f"{self.path} was started with a different config ({difference}); resume it with the "
                            f"config in {self.config}, or choose another --out")
        if is_main_process():
            self.path.mkdir(parents=True, exist_ok=True)
            if resume:
                clean_temporary_files(self.path)
            atomic_write_text(self.config, config.to_yaml())

    def log(self, message: str) -> None:
        if is_main_process():
            with open(self.log_file, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def run_state(config: Config, kind: str, genome: Genome | None = None) -> dict[str, Any]:
    """What a checkpoint records about where it came from (checked when it is loaded)."""
    return {"kind": kind, "space": to_dict(config.space), "config_hash": config_hash(config),
            "genome": dict(genome) if genome is not None else None, "target": config.deploy.target}


def with_target(config: Config, supernet: Supernet) -> Supernet:
    """``supernet`` with the numerics of the config's deployment target (``deploy.target``)."""
    return apply_target(supernet, config.deploy.target)


def new_supernet(config: Config) -> Supernet:
    """An untrained supernet of the config, with its target's numerics."""
    q = config.quant
    return with_target(config, build_supernet(config.space, QuantSettings(q.act_init_clip, q.learn_weight_clip)))


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """The checkpoint of a run folder, or ``path`` itself when it is a file."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise CheckpointError(f"{path} holds no {CHECKPOINT}: not a qnas run folder")
    return file


def load_trained(config: Config, path: str | os.PathLike[str]) -> tuple[Supernet, dict[str, Any]]:
    """A finished run's network (a supernet run, a baseline or a fine-tuned subnet) and its state, with the
    numerics of the config's target (a baseline or fine-tuned subnet must have been trained for it).

    ``path`` is a run folder or a checkpoint file. Errors name what does not fit.
    """
    file = checkpoint_file(path)
    state = load_checkpoint(file)
    if _trained_space(state) != config.space:
        raise CheckpointError(f"{file} was trained for a different search space than this config's; "
                              f"pass the config it was trained with (its run folder holds config.yaml)")
    if not state.get("finished"):
        raise CheckpointError(f"{file} is from a run that has not finished; continue it with --resume")
    trained_for = state.get("target", DEFAULT_TARGET)
    if state.get("kind") != "supernet" and trained_for != config.deploy.target:
        raise CheckpointError(f"{file} was trained for target {trained_for!r}, not {config.deploy.target!r}; pass "
                              f"--target {trained_for} (a supernet can be evaluated for any target, a trained "
                              f"subnet only for its own)")
    supernet = new_supernet(config)
    try:
        supernet.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{file} does not fit this network: {str(exc).splitlines()[0][:160]}") from None
    supernet.eval()
    return supernet, state


def _trained_space(state: dict[str, Any]) -> SpaceSpec | None:
    """The space a checkpoint was trained for (fields added since then take their defaults)."""
    try:
        return from_dict(SpaceSpec, dict(state.get("space") or {}))
    except (ConfigError, TypeError, ValueError):
        return None


def genome_of(state: dict[str, Any], space: SearchSpace) -> Genome | None:
    return None if state.get("genome") is None else space.validate(state["genome"])
