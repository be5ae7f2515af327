"""How pipeline stages report progress. The default reports nothing; the CLI draws rich progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["Reporter", "SILENT"]


class _SilentTraining:
    def stage_started(self, stage: Any, total_steps: int, done_steps: int) -> None:
        pass

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def stage_finished(self, stage: Any, mean_loss: float) -> None:
        pass


class _SilentSearch:
    def evaluated(self, candidate: Any, done: int, total: int) -> None:
        pass

    def generation_done(self, generation: int, parents: Sequence[Any], best: Any) -> None:
        pass


class Reporter:
    """Progress of long work: training (a ``TrainMonitor``), search (a ``SearchMonitor``), counted
    steps (a callback per finished item), the stages of ``qnas run``, and one-line messages."""

    @contextlib.contextmanager
    def training(self, title: str) -> Iterator[Any]:
        yield _SilentTraining()

    @contextlib.contextmanager
    def searching(self, total: int) -> Iterator[Any]:
        yield _SilentSearch()

    @contextlib.contextmanager
    def steps(self, title: str) -> Iterator[Callable[[str, int, int], None]]:
        """A callback ``(label, done, total)`` for work counted in items (table entries, networks)."""
        yield lambda label, done, total: None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def skipped(self, name: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


SILENT = Reporter()
