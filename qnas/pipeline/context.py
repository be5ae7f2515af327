"""What every stage of the pipeline shares: the config, its space, its data, and where policies live.

A ``Context`` is built once from a ``Config`` (the CLI reads the YAML; a Python user calls
``load_config``) and handed to every stage function. Datasets are built on first use and kept,
so a ``qnas run`` generates or reads them once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from qnas.config import Config
from qnas.data.augment import Augmentation, build_augmentation
from qnas.data.loaders import make_loader
from qnas.data.registry import build_split, check_data_config, dataset_kind
from qnas.errors import QnasError
from qnas.pipeline.parallel import jobs_and_threads
from qnas.pipeline.threads import command_threads, usable_cpus
from qnas.space.genome import SearchSpace
from qnas.space.policy import Policy, read_policy

__all__ = ["Context", "is_main_process"]


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Context:
    """The config of a run, its search space, its datasets, and the folders holding named policies.

    ``policy_dirs``: where ``FACTORx:NAME`` budgets and the uniform baselines look for ``NAME.yaml``
    (default: ``./policies``). ``source``: where the config came from (recorded in provenance).
    """

    def __init__(self, config: Config, *, policy_dirs: Sequence[str | os.PathLike[str]] = ("policies",),
                 source: str = "<config>") -> None:
        check_data_config(config)
        self.config = config
        self.space = SearchSpace(config.space)
        self.policy_dirs = [Path(p) for p in policy_dirs]
        self.source = source

    @property
    def spec(self):
        return self.config.space

    @property
    def deploy_hw(self) -> tuple[int, int]:
        return self.config.deploy.height, self.config.deploy.width

    @property
    def num_classes(self) -> int:
        return self.config.space.num_classes

    @property
    def ignore_index(self) -> int:
        return dataset_kind(self.config.data.dataset).ignore_index(self.config.data)

    # -- data ---------------------------------------------------------------------------------------
    @cached_property
    def train_dataset(self) -> Dataset:
        return build_split(self.config.data, "train")

    @cached_property
    def augmentation(self) -> Augmentation | None:
        """The training augmentation of ``data.augment`` (None when it is off)."""
        return build_augmentation(self.config.data.augment, self.config.data.train_size, self.ignore_index)

    @property
    def loader_workers(self) -> int:
        """``data.workers``, or by default none for in-memory data and up to 4 (one CPU left free) for files."""
        workers = self.config.data.workers
        if workers is None:
            in_memory = dataset_kind(self.config.data.dataset).in_memory
            workers = 0 if in_memory else max(0, min(4, usable_cpus() - 1))
        return workers

    def loader(self, split: str, batch_size: int = 50) -> DataLoader:
        """An unshuffled loader over ``split`` ('val': final validation; 'search': search validation)."""
        return make_loader(self._split(split), batch_size, shuffle=False, seed=0)

    def _split(self, split: str) -> Dataset:
        if split == "train":
            return self.train_dataset
        cache = self.__dict__.setdefault("_splits", {})
        if split not in cache:
            cache[split] = build_split(self.config.data, split)
        return cache[split]

    @cached_property
    def bn_images(self) -> list[Tensor]:
        """The fixed training batches every BatchNorm recalibration uses (the same for every subnet)."""
        dataset, cfg = self.train_dataset, self.config.train
        bs, n = cfg.batch_size, cfg.bn_calib_batches
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.config.seed))
        batches = [torch.stack([dataset[int(i)][0] for i in order[b * bs:(b + 1) * bs]])
                   for b in range(min(n, len(dataset) // bs))]
        if not batches:
            raise QnasError(f"BatchNorm recalibration needs {bs} training images, the dataset has {len(dataset)}")
        return batches

    # -- policies -----------------------------------------------------------------------------------
    def policy_path(self, name: str) -> Path:
        """A named policy: a path, or ``NAME.yaml`` in one of ``policy_dirs``."""
        candidates = [Path(name)] + [d / f"{name}.yaml" for d in self.policy_dirs]
        for path in candidates:
            if path.is_file():
                return path
        raise QnasError(f"reference policy {name!r} not found (looked for {', '.join(str(p) for p in candidates)})")

    def policy(self, name_or_path: str | os.PathLike[str]) -> Policy:
        return read_policy(self.policy_path(str(name_or_path)), self.space)

    # -- torch --------------------------------------------------------------------------------------
    def jobs(self, items: int) -> tuple[int, int]:
        """Worker processes and threads per worker for ``items`` independent pieces of work (``train.jobs``,
        ``qnas.pipeline.parallel``)."""
        return jobs_and_threads(self.config.train.jobs, command_threads(self.config.train.threads), items)

    def setup_torch(self) -> torch.device:
        """Thread count (``train.threads``, or the CPUs idle when the process started), seed, and (under
        torchrun) the process group; returns this process's device."""
        torch.set_num_threads(command_threads(self.config.train.threads))
        torch.manual_seed(self.config.seed)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        return torch.device("cpu")
