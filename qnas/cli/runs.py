"""The edge between a config and the training code: datasets, run folders, devices, progress bars."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from qnas.config import Config, config_hash, to_dict
from qnas.data import build_dataset, make_loader
from qnas.errors import CheckpointError, QnasError
from qnas.space import Genome, SearchSpace, atomic_write_text
from qnas.supernet import QuantSettings, Supernet, build_supernet
from qnas.train import Stage, load_checkpoint

__all__ = [
    "RunDir", "train_dataset", "val_loader", "search_val_loader", "bn_images", "setup_torch", "new_supernet",
    "load_trained", "RichMonitor", "is_main_process", "run_state", "genome_of",
]

CHECKPOINT = "checkpoint.pt"


# -- data ---------------------------------------------------------------------------------------
def train_dataset(config: Config) -> Dataset:
    d = config.data
    return build_dataset(d.dataset, "train", *d.train_size, n=d.train_scenes, seed=d.seed, root=d.root,
                         **({"exclude_cities": (d.search_val_city,)} if d.dataset == "cityscapes" else {}))


def val_loader(config: Config, batch_size: int = 50) -> DataLoader:
    """The final validation split (DigitScenes: the 'val' digit pool; Cityscapes: val)."""
    d = config.data
    ds = build_dataset(d.dataset, "val", *d.eval_size, n=d.val_scenes, seed=d.seed, root=d.root)
    return make_loader(ds, batch_size, shuffle=False, seed=0)


def search_val_loader(config: Config, batch_size: int = 50) -> DataLoader:
    """The search-validation split, disjoint from both training and final validation.

    DigitScenes: scenes from the 'calib' digit pool; Cityscapes: the held-out train city.
    """
    d = config.data
    if d.dataset == "digits":
        ds = build_dataset("digits", "calib", *d.eval_size, n=d.calib_scenes, seed=d.seed, root=None)
    else:
        ds = build_dataset("cityscapes", "train", *d.eval_size, n=None, seed=d.seed, root=d.root,
                           cities=(d.search_val_city,))
    return make_loader(ds, batch_size, shuffle=False, seed=0)


def bn_images(config: Config, dataset: Dataset) -> list[Tensor]:
    """The fixed training batches every BatchNorm recalibration uses (same for every subnet)."""
    bs, n = config.train.batch_size, config.train.bn_calib_batches
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))
    batches = []
    for b in range(min(n, len(dataset) // bs)):
        batches.append(torch.stack([dataset[int(i)][0] for i in order[b * bs:(b + 1) * bs]]))
    if not batches:
        raise QnasError(f"BatchNorm recalibration needs {bs} training images, the dataset has {len(dataset)}")
    return batches


# -- devices and processes ----------------------------------------------------------------------
def setup_torch(config: Config) -> torch.device:
    """Thread count, seed, and (under torchrun) the process group; returns this process's device."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.seed)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


# -- run folders ----------------------------------------------------------------------------------
class RunDir:
    """A training output folder: ``config.yaml`` (resolved), ``checkpoint.pt``, ``train.log``, results."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT
        self.config = self.path / "config.yaml"
        self.log_file = self.path / "train.log"

    def prepare(self, config: Config, resume: bool) -> None:
        """Create the folder, refuse to overwrite a run unless resuming it with the same config."""
        if self.path.exists() and not self.path.is_dir():
            raise QnasError(f"--out {self.path} exists and is not a folder")
        if self.checkpoint.exists() and not resume:
            raise QnasError(f"{self.path} already holds a run; pass --resume to continue it, or choose another --out")
        if resume and self.config.exists() and self.config.read_text() != config.to_yaml():
            raise QnasError(f"{self.path} was started with a different config; resume it with the config in "
                            f"{self.config}, or choose another --out")
        if is_main_process():
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.config, config.to_yaml())

    def log(self, message: str) -> None:
        if is_main_process():
            with open(self.log_file, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def run_state(config: Config, kind: str, genome: Genome | None = None) -> dict[str, Any]:
    """What a checkpoint records about where it came from (checked when it is loaded)."""
    return {"kind": kind, "space": to_dict(config.space), "config_hash": config_hash(config),
            "genome": dict(genome) if genome is not None else None}


def new_supernet(config: Config) -> Supernet:
    q = config.quant
    return build_supernet(config.space, QuantSettings(q.act_init_clip, q.learn_weight_clip))


def load_trained(config: Config, path: str | os.PathLike[str]) -> tuple[Supernet, dict[str, Any]]:
    """A finished run's network (a supernet run, a baseline or a fine-tuned subnet) and its state.

    ``path`` is a run folder or a checkpoint file. Errors name what does not fit.
    """
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise CheckpointError(f"{path} holds no {CHECKPOINT}: not a qnas run folder")
    state = load_checkpoint(file)
    if state.get("space") != to_dict(config.space):
        raise CheckpointError(f"{file} was trained for a different search space than this config's; "
                              f"pass the config it was trained with (its run folder holds config.yaml)")
    if not state.get("finished"):
        raise CheckpointError(f"{file} is from a run that has not finished; continue it with --resume")
    supernet = new_supernet(config)
    try:
        supernet.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{file} does not fit this network: {str(exc).splitlines()[0][:160]}") from None
    supernet.eval()
    return supernet, state


def genome_of(state: dict[str, Any], space: SearchSpace) -> Genome | None:
    return None if state.get("genome") is None else space.validate(state["genome"])


# -- progress -------------------------------------------------------------------------------------
class RichMonitor:
    """A rich progress bar per stage with loss, LR and throughput (main process only)."""

    def __init__(self, title: str, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.title = title
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  lr {task.fields[lr]:.2e}  {task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled,
        )
        self.task: Any = None
        self._ema: float | None = None

    def __enter__(self) -> RichMonitor:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage_started(self, stage: Stage, total_steps: int, done_steps: int) -> None:
        self._ema = None
        self.task = self.progress.add_task(f"{self.title} {stage.name}", total=total_steps, completed=done_steps,
                                           loss=float("nan"), lr=stage.lr, ips=0.0)

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None:
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        self.progress.update(self.task, advance=1, loss=self._ema, lr=lr, ips=images_per_s)

    def stage_finished(self, stage: Stage, mean_loss: float) -> None:
        self.progress.update(self.task, loss=mean_loss)
