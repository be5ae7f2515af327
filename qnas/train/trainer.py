"""The training loop for every schedule: supernet (sandwich + in-place distillation), baseline, fine-tune.

Deterministic by construction: the batch order of an epoch depends on ``(seed, stage, epoch)``
and the subnets of a step on ``(seed, step)``, so a run resumed from a checkpoint, or run on
several ranks under ``torchrun``, computes exactly what an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from qnas.config import TrainConfig
from qnas.errors import CheckpointError, QnasError
from qnas.supernet.network import Supernet
from qnas.data.augment import batch_seed
from qnas.train.checkpoint import load_checkpoint, save_checkpoint
from qnas.train.loop import poly_lr
from qnas.train.schedule import Stage, step_genomes

__all__ = ["TrainMonitor", "Position", "Trainer", "TrainingDiverged", "distill_loss", "batch_indices"]


class TrainingDiverged(QnasError):
    """The loss or a weight stopped being finite; the last good checkpoint is kept."""

class TrainMonitor(Protocol):
    """What a trainer reports; the CLI draws rich progress bars from it, tests ignore it."""

    def stage_started(self, stage: Stage, total_steps: int, done_steps: int) -> None: ...

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None: ...

    def stage_finished(self, stage: Stage, mean_loss: float) -> None: ...


class _SilentMonitor:
    def stage_started(self, stage: Stage, total_steps: int, done_steps: int) -> None:
        pass

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def stage_finished(self, stage: Stage, mean_loss: float) -> None:
        pass


@dataclass(frozen=True)
class Position:
    """Where a run stands: the next batch to train is ``batch`` of ``epoch`` of ``stage``."""

    stage: int = 0
    epoch: int = 0
    batch: int = 0
    step: int = 0  # steps trained so far, over all stages


def distill_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Per-pixel KL divergence from the teacher's soft output to the student's (Hinton's T² scaling)."""
    t = temperature
    log_p = F.log_softmax(student / t, dim=1)
    q = F.softmax(teacher / t, dim=1)
    return F.kl_div(log_p, q, reduction="none").sum(1).mean() * t * t


def batch_indices(n: int, batch_size: int, seed: int, stage: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[np.ndarray]:
    """This rank's sample indices for every step of an epoch (equal step counts on all ranks)."""
    order = np.random.default_rng([seed, stage, epoch]).permutation(n)
    steps = n // (batch_size * world)
    if steps == 0:
        raise ValueError(f"{n} training images are fewer than one batch of {batch_size} x {world} ranks")
    return [order[(s * world + rank) * batch_size:(s * world + rank + 1) * batch_size] for s in range(steps)]


class _TrainForward(nn.Module):
    """``forward`` = the supernet's training forward (main and auxiliary logits), for DDP's hooks."""

    def __init__(self, supernet: Supernet) -> None:
        super().__init__()
        self.supernet = supernet

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.supernet.forward_train(x)


class Trainer:
    """Runs ``stages`` on ``supernet`` with one optimizer, checkpointing to ``checkpoint_path``.

    Labels equal to the dataset's ``ignore_index`` do not count in the loss.
    """

    def __init__(self, supernet: Supernet, stages: Sequence[Stage], cfg: TrainConfig, dataset: Dataset, *,
                 seed: int, checkpoint_path: str | Path, monitor: TrainMonitor | None = None,
                 log: Callable[[str], None] | None = None, device: torch.device | str = "cpu",
                 extra_state: dict[str, Any] | None = None, teacher: nn.Module | None = None,
                 teacher_weight: float = 0.0, augment: Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]] | None = None,
                 workers: int = 0) -> None:
        self.supernet = supernet.to(device)
        self.space = supernet.space
        self.stages = list(stages)
        self.cfg = cfg
        self.dataset = dataset
        self.ignore_index = int(dataset.ignore_index)
        self.seed = seed
        self.checkpoint_path = Path(checkpoint_path)
        self.monitor = monitor or _SilentMonitor()
        self.log = log or (lambda message: None)
        self.device = torch.device(device)
        self.extra_state = dict(extra_state or {})
        # a fixed network whose soft output single-subnet stages distil (fine-tuning from the supernet's largest)
        self.teacher = None if teacher is None else teacher.to(device).eval()
        self.teacher_weight = teacher_weight
        self.augment = augment  # (images, labels, seed) -> the batch the step trains on (qnas.data.augment)
        self.workers = workers  # loader processes reading the batches
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        if cfg.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        forward = _TrainForward(self.supernet)
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(forward, device_ids=ids, find_unused_parameters=True)
        self.forward = forward
        params = [p for p in self.supernet.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=self.stages[0].lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=self.stages[0].lr, weight_decay=cfg.weight_decay)
        self.position = Position()
        self.saved_step: int | None = None

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self, finished: bool) -> dict[str, Any]:
        return {
            "model": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "position": asdict(self.position),
            "stages": [s.name for s in self.stages],
            "torch_rng": torch.get_rng_state(),
            "scaler": self.scaler.state_dict(),
            "finished": finished,
            **self.extra_state,
        }

    def save(self, finished: bool = False) -> None:
        """Write the checkpoint (rank 0), unless a weight is no longer finite: then the last one stays."""
        bad = next((name for name, p in self.supernet.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            self._diverged(f"weight {bad} is not finite")
        if self.rank == 0:
            save_checkpoint(self.checkpoint_path, self.state_dict(finished))
        self.saved_step = self.position.step
        if self.distributed:
            dist.barrier()

    def _diverged(self, what: str) -> None:
        stage = self.stages[min(self.position.stage, len(self.stages) - 1)].name
        kept = (f"the checkpoint of step {self.saved_step} ({self.checkpoint_path}) is kept"
                if self.saved_step is not None else "no checkpoint was written yet")
        raise TrainingDiverged(f"training diverged in stage {stage} at step {self.position.step + 1}: {what}; {kept}; "
                               "lower the learning rate and --resume, or start again")

    def load(self, state: dict[str, Any]) -> None:
        if state.get("stages") != [s.name for s in self.stages]:
            raise CheckpointError(f"{self.checkpoint_path}: its stages {state.get('stages')} are not this "
                                  f"schedule's {[s.name for s in self.stages]}; use a new output folder")
        try:
            self.supernet.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{self.checkpoint_path} does not fit this network: "
                                  f"{str(exc).splitlines()[0][:160]}") from None
        self.position = Position(**state["position"])
        self.saved_step = self.position.step
        torch.set_rng_state(state["torch_rng"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    # -- training ---------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Position:
        """Train every remaining stage; with ``resume``, continue from the checkpoint if there is one."""
        if resume and self.checkpoint_path.exists():
            self.load(load_checkpoint(self.checkpoint_path))
            self.log(f"resumed at stage {self.position.stage} epoch {self.position.epoch} "
                     f"batch {self.position.batch} (step {self.position.step})")
        for index in range(self.position.stage, len(self.stages)):
            self._run_stage(index)
        self.save(finished=True)
        return self.position

    def _run_stage(self, index: int) -> None:
        stage = self.stages[index]
        self.supernet.set_quantization(stage.quantize)
        per_epoch = len(batch_indices(len(self.dataset), self.cfg.batch_size, self.seed, index, 0, 0, self.world))
        total = stage.epochs * per_epoch
        start = self.position
        self.monitor.stage_started(stage, total, start.epoch * per_epoch + start.batch)
        self.log(f"stage {stage.name}: {stage.epochs} epochs x {per_epoch} steps, lr {stage.lr:g}, "
                 f"quantized {stage.quantize}")
        losses = []
        for epoch in range(start.epoch, stage.epochs):
            batches = batch_indices(len(self.dataset), self.cfg.batch_size, self.seed, index, epoch,
                                    self.rank, self.world)
            first = start.batch if epoch == start.epoch else 0
            for b, (images, labels) in enumerate(self._loader(batches[first:]), start=first):
                lr = poly_lr(stage.lr, epoch * per_epoch + b, total)
                tic = time.perf_counter()
                images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
                if self.augment is not None:
                    images, labels = self.augment(images, labels, batch_seed(self.seed, index, epoch, b, self.rank))
                loss = self.step(stage, images, labels, lr)
                losses.append(loss)
                self.monitor.step_done(loss, lr, self.cfg.batch_size * self.world / (time.perf_counter() - tic))
                self.position = Position(index, epoch, b + 1, self.position.step + 1)
                if self.position.step % self.cfg.checkpoint_every == 0:
                    self.save()
            self.position = Position(index, epoch + 1, 0, self.position.step)
            self.log(f"stage {stage.name} epoch {epoch + 1}/{stage.epochs}: "
                     f"mean loss {np.mean(losses[-per_epoch:]) if losses else float('nan'):.4f}")
        self.position = Position(index + 1, 0, 0, self.position.step)
        self.save()
        mean = float(np.mean(losses)) if losses else float("nan")
        self.monitor.stage_finished(stage, mean)

    def _loader(self, batches: Sequence[np.ndarray]) -> Iterator[tuple[Tensor, Tensor]]:
        """The given batches of the dataset, in order, read by ``workers`` processes (0: this one). A user
        error in a loader process (a bad mask) comes back as the same one-line error, not wrapped in
        the worker's traceback."""
        loader = iter(DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches],
                                 num_workers=self.workers, pin_memory=self.device.type == "cuda"))
        while True:
            try:
                batch = next(loader)
            except StopIteration:
                return
            except QnasError as exc:
                lines = [line for line in str(exc).splitlines() if line.strip()]
                if len(lines) <= 1:
                    raise
                last = lines[-1]  # "qnas.errors.DataError: MESSAGE", the worker's original error
                name = f"{type(exc).__module__}.{type(exc).__name__}: "
                raise type(exc)(last[len(name):] if last.startswith(name) else last) from None
            yield batch

    def step(self, stage: Stage, images: Tensor, labels: Tensor, lr: float) -> float:
        """One optimizer step of ``stage`` on a batch at learning rate ``lr``: every subnet the step
        trains (the sandwich of ``step_genomes``, drawn from the run's position) forward and backward,
        the largest's soft output distilled into the others; returns the mean loss."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        genomes = step_genomes(self.space, stage, cfg.random_subnets, self.seed, self.position.step)
        self.optimizer.zero_grad(set_to_none=True)
        self.supernet.train()
        teacher, total = None, 0.0
        if self.teacher is not None and self.teacher_weight and len(genomes) == 1:
            with torch.no_grad():
                fixed_teacher = self.teacher(images)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # mixed precision for float stages only: the fake quantizers' rounding must see float32 values
        amp = self.amp_dtype is not None and not stage.quantize
        for i, genome in enumerate(genomes):
            self.supernet.set_genome(genome)
            last = i == len(genomes) - 1
            sync = contextlib.nullcontext() if last or not self.distributed else self.forward.no_sync()
            with sync, torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=amp):
                logits, aux = self.forward(images)
                loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index)
                if cfg.aux_weight:
                    loss = loss + cfg.aux_weight * sum(
                        F.cross_entropy(a, labels, ignore_index=self.ignore_index) for a in aux)
                if teacher is not None and cfg.distill_weight:
                    loss = loss + cfg.distill_weight * distill_loss(logits, teacher, cfg.distill_temperature)
                if self.teacher is not None and self.teacher_weight and len(genomes) == 1:
                    loss = loss + self.teacher_weight * distill_loss(logits, fixed_teacher, cfg.distill_temperature)
                self.scaler.scale(loss / len(genomes)).backward()
            if i == 0 and len(genomes) > 1:
                teacher = logits.detach()
            total += loss.item()
        if not math.isfinite(total):
            self.optimizer.zero_grad(set_to_none=True)
            self._diverged(f"the loss is {total}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total / len(genomes)
