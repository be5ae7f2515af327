"""The experiment config: one frozen dataclass per YAML section."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Literal

from qnas.config.loader import dump_yaml, from_dict, load_yaml
from qnas.errors import ConfigError, FieldError
from qnas.quant.targets import DEFAULT_TARGET, TARGETS
from qnas.space.spec import SpaceSpec

__all__ = [
    "SEED_LIMIT", "check_seed", "config_difference", "AugmentConfig", "CompareConfig", "GumbelConfig", "Config", "DataConfig", "DeployConfig", "QuantConfig", "PhaseConfig", "SearchConfig", "TrainConfig", "load_config",
    "config_hash",
]

SEED_LIMIT = 2**32  # seeds are non-negative and below this (numpy and torch take them all)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise FieldError(name, f"must be > 0, got {value}")


def check_seed(name: str, value: int) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise FieldError(name, f"must be between 0 and {SEED_LIMIT - 1}, got {value}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (kornia, batched, image and mask together); off by default.

    With ``scale`` set, training images are read at ``data.eval_size`` (full resolution), rescaled by a
    random factor in ``scale``, and cropped to ``data.train_size`` with the ignore index where the scaled
    image does not cover the crop. Evaluation never augments."""

    scale: tuple[float, float] | None = None  # random rescale range, e.g. [0.5, 2.0]; null: no rescale or crop
    flip: float = 0.0  # probability of a horizontal flip
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # brightness, contrast, saturation, hue

    def __post_init__(self) -> None:
        if self.scale is not None and not 0 < self.scale[0] <= self.scale[1]:
            raise FieldError("scale", f"must be [LOW, HIGH] with 0 < LOW <= HIGH, got {list(self.scale)}")
        if not 0.0 <= self.flip <= 1.0:
            raise FieldError("flip", f"must be a probability in [0, 1], got {self.flip}")
        if min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise FieldError("jitter", f"must be >= 0 (hue <= 0.5), got {list(self.jitter)}")

    @property
    def enabled(self) -> bool:
        return self.scale is not None or self.flip > 0 or any(self.jitter)


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and at which size the network is trained and evaluated."""

    dataset: str = "digits"  # a registered dataset (qnas.data.registry): digits, cityscapes, folder
    root: str | None = None  # cityscapes: leftImg8bit/ and gtFine/; folder: images/ and masks/; unused for digits
    class_names: tuple[str, ...] = ()  # folder: the classes, mask ids 0..N-1 (their count is the number of classes)
    ignore_index: int = 255  # folder: the mask id that belongs to no class (not counted in loss or mIoU)
    search_fraction: float = 0.1  # folder: the share of train images held out as the search-validation split
    workers: int | None = None  # training loader processes; null: 0 for in-memory data, else min(4, CPUs - 1)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_size: tuple[int, int] = (64, 64)  # height, width of training images / crops
    eval_size: tuple[int, int] = (64, 64)  # height, width at which val / calib are evaluated
    train_scenes: int = 2000  # DigitScenes only: number of generated scenes per split
    val_scenes: int = 400
    calib_scenes: int = 200
    search_val_city: str = "aachen"  # Cityscapes: the train city held out for search validation
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "eval_size"):
            for v in getattr(self, name):
                if v < 32 or v % 32:
                    raise FieldError(name, f"sizes must be multiples of 32 and >= 32, got {v}")
        for name in ("train_scenes", "val_scenes", "calib_scenes", "batch_size"):
            _positive(name, getattr(self, name))
        check_seed("seed", self.seed)
        if not 0 <= self.ignore_index <= 255:
            raise FieldError("ignore_index", f"must be a mask id from 0 to 255, got {self.ignore_index}")
        if self.ignore_index < len(self.class_names):
            raise FieldError("ignore_index", f"{self.ignore_index} is a class id (class_names has "
                                             f"{len(self.class_names)}); use a value from {len(self.class_names)} to 255")
        if len(set(self.class_names)) != len(self.class_names):
            raise FieldError("class_names", "lists a name twice")
        if not 0.0 < self.search_fraction < 1.0:
            raise FieldError("search_fraction", f"must be between 0 and 1 (exclusive), got {self.search_fraction}")
        if self.workers is not None and self.workers < 0:
            raise FieldError("workers", f"must be >= 0 or null (automatic), got {self.workers}")


@dataclass(frozen=True)
class DeployConfig:
    """The resolution the exported network runs at (latency table, export, reported cost) and the target
    runtime whose exact bit widths (``qnas.quant.targets``) every stage uses."""

    height: int = 128
    width: int = 256
    target: str = DEFAULT_TARGET  # whose numerics every network is evaluated, trained and exported with

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if v < 32 or v % 32:
                raise FieldError(name, f"must be a multiple of 32 and >= 32, got {v}")
        if self.target not in TARGETS:
            raise FieldError("target", f"must be one of {', '.join(TARGETS)}, got {self.target!r}")


@dataclass(frozen=True)
class QuantConfig:
    """How the fake quantizers start and learn."""

    act_init_clip: float = 4.0  # initial PACT clip alpha for every (layer, bit width)
    learn_weight_clip: bool = False  # False: per-channel max |w|; True: learned ratio of it

    def __post_init__(self) -> None:
        _positive("act_init_clip", self.act_init_clip)


@dataclass(frozen=True)
class PhaseConfig:
    """One progressive-shrinking phase (METHOD.md §4): which depths it samples, for how long, at what LR."""

    name: str
    epochs: int
    lr: float
    depths: tuple[int, ...]

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs)
        _positive("lr", self.lr)
        if not self.depths:
            raise FieldError("depths", "must list at least one depth")


def _default_phases() -> tuple[PhaseConfig, ...]:
    return (PhaseConfig("full-depth", 4, 3e-3, (4,)), PhaseConfig("depth-3-4", 2, 1e-3, (3, 4)),
            PhaseConfig("depth-2-4", 3, 2e-3, (2, 3, 4)))


@dataclass(frozen=True)
class TrainConfig:
    """Supernet training (float warm-up, then progressive-shrinking QAT phases), baselines, fine-tuning."""

    optimizer: Literal["sgd", "adam"] = "adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 4e-5
    batch_size: int = 16
    warmup_epochs: int = 3  # float training of the largest network before quantization is switched on
    warmup_lr: float = 3e-3
    quantize: bool = True  # False: the phases train a float supernet (quantizers off)
    phases: tuple[PhaseConfig, ...] = field(default_factory=_default_phases)
    random_subnets: int = 1  # per step, besides the largest (max bits) and the smallest (min bits)
    distill_weight: float = 1.0  # in-place distillation from the largest subnet's soft output
    distill_temperature: float = 1.0
    aux_weight: float = 0.4  # deep supervision of every trained subnet (float aux heads, dropped by freeze)
    bn_calib_batches: int = 8  # BatchNorm recalibration of a cut subnet
    checkpoint_every: int = 50  # steps between checkpoints (and one at the end of every phase)
    baseline_float_epochs: int = 3  # a uniform baseline: float warm-up, then QAT at its bit widths
    baseline_qat_epochs: int = 3
    finetune_epochs: int = 3  # QAT fine-tuning of a subnet cut from the supernet
    finetune_lr: float = 1e-3
    finetune_distill: float = 0.0  # weight of distillation from the teacher (below) while fine-tuning
    # the subnet of the supernet that fine-tuning distils from: its largest, or a policy (name or file), e.g. the
    # best of a search without a budget (qnas search --bitops-budget none): FasterSeg's teacher-student pair
    finetune_teacher: str = "largest"
    threads: int = 0  # torch intra-op threads; 0: the CPUs that are idle when the command starts (at least 1)
    # processes for independent work on a CPU (a search generation's evaluations, the sensitivity variants, a
    # comparison's fine-tunes), one thread each; 0: one per thread, 1: all in the command's own process
    jobs: int = 0
    amp: Literal["off", "bf16", "fp16"] = "off"  # mixed precision of float stages on a GPU (never of QAT)
    channels_last: bool = False  # NHWC memory format for the network and its inputs on a GPU

    def __post_init__(self) -> None:
        for name in ("batch_size", "warmup_lr", "finetune_lr", "distill_temperature"):
            _positive(name, getattr(self, name))
        for name in ("warmup_epochs", "random_subnets", "distill_weight", "finetune_distill", "aux_weight", "weight_decay",
                     "baseline_float_epochs", "baseline_qat_epochs", "finetune_epochs", "threads", "jobs"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name)}")
        _positive("bn_calib_batches", self.bn_calib_batches)
        _positive("checkpoint_every", self.checkpoint_every)
        if not str(self.finetune_teacher).strip():
            raise FieldError("finetune_teacher", "must be 'largest' or a policy name or file")
        if not self.phases:
            raise FieldError("phases", "must list at least one phase")

    @property
    def supernet_epochs(self) -> int:
        return self.warmup_epochs + sum(p.epochs for p in self.phases)


@dataclass(frozen=True)
class GumbelConfig:
    """SqueezeNAS's differentiable search (``search.strategy: gumbel``, METHOD.md §8): architecture parameters
    over every gene of a trained supernet, optimized through a Gumbel-softmax relaxation against the
    cross-entropy plus the expected cost; the supernet's weights stay as trained."""

    steps: int = 300  # optimizer steps on the training split
    batch_size: int | None = None  # default: train.batch_size
    lr: float = 0.1  # Adam on the architecture parameters
    tau_start: float = 5.0  # Gumbel-softmax temperature, annealed geometrically ...
    tau_end: float = 1.0  # ... to this
    prune_below: float = 0.005  # a choice whose probability falls below this is removed (0: never)
    cost: str = "bitops"  # what is penalized without a budget (with budgets, the budgets' costs are): bitops, macs,
    #                       latency (needs --lut), memory
    alpha: float = 1.0  # penalty weight: alpha * relu(E[cost] / (target * budget) - 1) per budget; without a
    #                     budget alpha * E[cost] / (the largest genome's cost)
    budget_step: float = 1.02  # per step: a budget's target (from 1) divided by this while the most probable
    #                            genome misses it, multiplied (up to 1) while it meets it
    samples: int = 8  # genomes drawn from the final distribution and evaluated beside the argmax one
    checkpoint_every: int = 10  # steps between saved states (a killed search resumes from the last)

    def __post_init__(self) -> None:
        for name in ("steps", "checkpoint_every"):
            _positive(name, getattr(self, name))
        if self.batch_size is not None:
            _positive("batch_size", self.batch_size)
        if self.samples < 0:
            raise FieldError("samples", f"must be >= 0, got {self.samples}")
        if not (0 < self.tau_end <= self.tau_start):
            raise FieldError("tau_end", f"must be in (0, tau_start], got {self.tau_end} (tau_start {self.tau_start})")
        if not 0.0 <= self.prune_below < 0.5:
            raise FieldError("prune_below", f"must be in [0, 0.5), got {self.prune_below}")
        if self.cost not in ("bitops", "macs", "latency", "memory"):
            raise FieldError("cost", f"{self.cost!r} is not allowed; allowed: bitops, macs, latency, memory")
        if not self.lr > 0:
            raise FieldError("lr", f"must be > 0, got {self.lr}")
        if not self.alpha >= 0:
            raise FieldError("alpha", f"must be >= 0, got {self.alpha}")
        if not self.budget_step > 1:
            raise FieldError("budget_step", f"must be > 1, got {self.budget_step}")


@dataclass(frozen=True)
class SearchConfig:
    """The search (METHOD.md §6); budgets are absolute or FACTORx:POLICY (e.g. 0.5x:uniform_w8a8)."""

    population: int = 100
    parents: int = 50
    mutants: int = 50
    crossovers: int = 50
    generations: int = 10
    p_mutate: float = 0.2
    seed: int = 0
    bitops_budget: str | None = None  # GBitOps at the deployment resolution, or FACTORx:POLICY
    latency_budget: str | None = None  # ms predicted by the latency table (with its overhead), or FACTORx:POLICY
    memory_budget: str | None = None  # KiB of weights at their bit widths (+ scale and bias), or FACTORx:POLICY
    max_tries: int = 2000  # per candidate, sampling under the budgets
    strategy: str = "evolution"  # a registered strategy: evolution, random (its control), nsga2 (a whole front)
    winners: tuple[str, ...] = ()  # BitOps budgets (FACTORx:POLICY or GBitOps) at which `qnas run` picks a
    #                                policy from the search's front; empty: the one at bitops_budget
    gumbel: GumbelConfig = field(default_factory=GumbelConfig)  # strategy gumbel's settings

    def __post_init__(self) -> None:
        for name in ("population", "parents", "generations", "max_tries"):
            _positive(name, getattr(self, name))
        for name in ("mutants", "crossovers"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.parents > self.population:
            raise FieldError("parents", f"{self.parents} exceeds population {self.population}")
        if not 0.0 <= self.p_mutate <= 1.0:
            raise FieldError("p_mutate", f"must be in [0, 1], got {self.p_mutate}")
        check_seed("seed", self.seed)


@dataclass(frozen=True)
class CompareConfig:
    """How `qnas compare` (and `qnas run`'s comparison) trains each policy."""

    seeds: int = 1  # fine-tuning seeds per policy (data order); mean, std and a 95% interval over them

    def __post_init__(self) -> None:
        _positive("seeds", self.seeds)


@dataclass(frozen=True)
class Config:
    space: SpaceSpec = field(default_factory=SpaceSpec)
    data: DataConfig = field(default_factory=DataConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)
        # data.dataset and its class count are checked where datasets are known (qnas.data.check_data_config)
        for i, phase in enumerate(self.train.phases):
            bad = sorted(set(phase.depths) - set(self.space.depths))
            if bad:
                raise FieldError(f"train.phases[{i}].depths",
                                 f"{bad} not in space.depths {list(self.space.depths)}")

    def to_yaml(self) -> str:
        return dump_yaml(self)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config; errors name the offending key path."""
    data = load_yaml(path)
    try:
        return from_dict(Config, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_difference(saved: Config, current: Config) -> str | None:
    """The first key path where two configs differ, as 'KEY: SAVED there, CURRENT here'; None if equal."""
    from qnas.config.loader import to_dict

    def walk(a, b, path: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                found = walk(a.get(key), b.get(key), f"{path}.{key}" if path else key)
                if found:
                    return found
            return None
        return None if a == b else f"{path}: {a!r} there, {b!r} here"

    return walk(to_dict(saved), to_dict(current), "")


def config_hash(config: Config) -> str:
    """Short stable hash of the resolved config (provenance of policies and runs)."""
    return hashlib.sha256(config.to_yaml().encode()).hexdigest()[:16]
