"""The CLI's progress: rich bars for training, a live table for search, counted steps, stage lines."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console

from qnas.pipeline import Reporter, is_main_process

__all__ = ["RichReporter", "TrainingBars", "SearchTable"]


class TrainingBars:
    """A rich progress bar per training stage with loss, LR and throughput (a ``TrainMonitor``)."""

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

    def stage_started(self, stage: Any, total_steps: int, done_steps: int) -> None:
        self._ema = None
        self.task = self.progress.add_task(f"{self.title} {stage.name}", total=total_steps, completed=done_steps,
                                           loss=float("nan"), lr=stage.lr, ips=0.0)

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None:
        self._ema = loss if self._ema is None else 0.9 * self._ema + 0.1 * loss
        self.progress.update(self.task, advance=1, loss=self._ema, lr=lr, ips=images_per_s)

    def stage_finished(self, stage: Any, mean_loss: float) -> None:
        self.progress.update(self.task, loss=mean_loss)


class SearchTable:
    """A rich live view: evaluation progress and the best genome so far per generation (a ``SearchMonitor``)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        self.table = Table(title="best so far")
        for name in ("generation", "best mIoU", "GBitOps", "latency ms", "parents' mean mIoU"):
            self.table.add_column(name, justify="right")
        self.progress = Progress(TextColumn("evaluations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.task = self.progress.add_task("eval", total=total)
        self.live = Live(Group(self.progress, self.table), refresh_per_second=2) if enabled else None

    def evaluated(self, candidate: Any, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done)

    def generation_done(self, generation: int, parents: list, best: Any) -> None:
        mean = sum(p.fitness for p in parents) / len(parents)
        latency = best.metrics.get("latency_ms")
        self.table.add_row(str(generation), f"{best.fitness:.4f}", f"{best.metrics['bitops'] / 1e9:.3f}",
                           "-" if latency is None else f"{latency:.3f}", f"{mean:.4f}")


class RichReporter(Reporter):
    """Progress bars unless ``quiet`` (or not the main process); stage lines always."""

    def __init__(self, quiet: bool = False) -> None:
        self.bars = not quiet and is_main_process()
        self.console = Console()

    @contextlib.contextmanager
    def training(self, title: str) -> Iterator[Any]:
        bars = TrainingBars(title, enabled=self.bars)
        with bars.progress:
            yield bars

    @contextlib.contextmanager
    def searching(self, total: int) -> Iterator[Any]:
        table = SearchTable(total, self.bars)
        if table.live is None:
            yield table
            return
        with table.live:
            yield table

    @contextlib.contextmanager
    def steps(self, title: str) -> Iterator[Callable[[str, int, int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[label]}"),
                      TimeElapsedColumn(), disable=not self.bars) as bar:
            task = bar.add_task(title, total=None, label="")

            def advance(label: str, done: int, total: int) -> None:
                bar.update(task, total=total, completed=done, label=label)

            yield advance

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        import time

        self.console.rule(name)
        tic = time.perf_counter()
        yield
        self.console.print(f"[green]✓[/] {name}: {time.perf_counter() - tic:.0f} s")

    def skipped(self, name: str) -> None:
        self.console.print(f"[green]✓[/] {name}: already complete, skipped")

    def message(self, text: str) -> None:
        self.console.print(text)
