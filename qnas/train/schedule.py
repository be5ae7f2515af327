"""Training schedules as data: which subnets each step trains, for how long, at what LR.

A schedule is a list of stages. Supernet training is a float warm-up of the largest network
followed by the progressive-shrinking phases (METHOD.md §4); a uniform baseline is a float stage
and a QAT stage of one fixed genome; fine-tuning is one QAT stage of one fixed genome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qnas.config import TrainConfig
from qnas.space import Genome, SearchSpace

__all__ = ["Stage", "supernet_stages", "baseline_stages", "finetune_stages", "step_genomes"]


@dataclass(frozen=True)
class Stage:
    """One stage of a schedule.

    With ``genome`` set, every step trains that one subnet; otherwise every step trains a
    sandwich of subnets whose stage depths are drawn from ``depths``.
    """

    name: str
    epochs: int
    lr: float
    quantize: bool
    depths: tuple[int, ...] = ()
    genome: Genome | None = None

    def __post_init__(self) -> None:
        if (self.genome is None) == (not self.depths):
            raise ValueError(f"stage {self.name!r}: give either depths (sandwich) or one genome")


def supernet_stages(cfg: TrainConfig, space: SearchSpace) -> list[Stage]:
    """Float warm-up of the largest network, then one stage per progressive-shrinking phase."""
    stages = []
    if cfg.warmup_epochs:
        stages.append(Stage("float-warmup", cfg.warmup_epochs, cfg.warmup_lr, False, genome=space.largest()))
    for phase in cfg.phases:
        stages.append(Stage(phase.name, phase.epochs, phase.lr, cfg.quantize, depths=tuple(phase.depths)))
    return stages


def baseline_stages(cfg: TrainConfig, genome: Genome) -> list[Stage]:
    """A standalone network: float training, then QAT at the genome's bit widths."""
    stages = []
    if cfg.baseline_float_epochs:
        stages.append(Stage("float", cfg.baseline_float_epochs, cfg.warmup_lr, False, genome=genome))
    if cfg.baseline_qat_epochs:
        stages.append(Stage("qat", cfg.baseline_qat_epochs, cfg.finetune_lr, True, genome=genome))
    if not stages:
        raise ValueError("a baseline needs baseline_float_epochs or baseline_qat_epochs > 0")
    return stages


def finetune_stages(cfg: TrainConfig, genome: Genome) -> list[Stage]:
    """QAT fine-tuning of a subnet that starts from the supernet's weights."""
    if not cfg.finetune_epochs:
        raise ValueError("fine-tuning needs finetune_epochs > 0")
    return [Stage("finetune", cfg.finetune_epochs, cfg.finetune_lr, True, genome=genome)]


def step_genomes(space: SearchSpace, stage: Stage, random_subnets: int, seed: int, step: int) -> list[Genome]:
    """The subnets one training step trains, the teacher first.

    Sandwich rule: the largest subnet at the highest bit widths, the smallest at the lowest,
    and ``random_subnets`` random ones, all within the stage's depths. The draw depends only
    on ``(seed, step)``, so every rank of a distributed run trains the same subnets and a
    resumed run trains what the interrupted one would have.
    """
    if stage.genome is not None:
        return [stage.genome]
    spec = space.spec
    depths: Sequence[int] = stage.depths
    rng = np.random.default_rng([seed, step])
    largest = space.uniform(max(spec.bits), max(spec.kernels), max(spec.expands), max(depths), others="largest")
    smallest = space.uniform(min(spec.bits), min(spec.kernels), min(spec.expands), min(depths), others="smallest")
    return [largest, smallest] + [space.sample(rng, depths) for _ in range(random_subnets)]
