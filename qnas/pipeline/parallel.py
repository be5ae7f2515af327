"""Independent pieces of work in several processes of this machine: a search generation's evaluations,
the precision-sensitivity variants, a comparison's fine-tunes.

Small convolutions do not keep two OpenMP threads busy: on the 2-core development machine two
one-thread processes evaluate subnets about 1.4x faster than one two-thread process, and fine-tune
about 1.2x faster (``benchmarks/results/parallel_jobs.md``). ``local_map`` forks the workers, so the
work may be any function, a closure over a loaded supernet included; each worker runs
``threads // jobs`` torch threads and ignores Ctrl-C (the parent stops them). Results come back in
order, as they would from ``map``. Under torchrun, ranks already share the work
(``qnas.pipeline.distributed``); on a GPU the work stays in this process.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import torch

from qnas.pipeline.distributed import rank_and_world
from qnas.pipeline.threads import set_worker_threads

__all__ = ["jobs_and_threads", "local_map", "mapper"]

T = TypeVar("T")
R = TypeVar("R")

_WORK: Callable[[Any], Any] | None = None  # the function a forked worker runs (inherited, never pickled)


def jobs_and_threads(jobs: int, threads: int, items: int) -> tuple[int, int]:
    """Worker processes and torch threads per worker for ``items`` pieces of work: ``jobs`` processes (0: one
    per thread, on a CPU outside torchrun; else one), at most one per item, sharing ``threads`` threads."""
    if jobs == 0:
        jobs = threads if not torch.cuda.is_available() and rank_and_world()[1] == 1 else 1
    jobs = max(1, min(jobs, items))
    return jobs, max(1, threads // jobs)


def _start(work: Callable[[Any], Any], threads: int) -> None:
    global _WORK
    _WORK = work
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # not the parent's progress display
    set_worker_threads(threads)
    torch.set_num_threads(threads)


def _call(item: Any) -> Any:
    assert _WORK is not None
    return _WORK(item)


def local_map(work: Callable[[T], R], items: Sequence[T], jobs: int, threads: int) -> Iterator[R]:
    """``work(item)`` for every item, yielded in order, from ``jobs`` forked processes of ``threads`` torch threads
    each (``jobs_and_threads``); with one job, in this process. An error in a worker is raised here."""
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield work(item)
        return
    with warnings.catch_warnings():
        # Python warns that a process with threads (OpenMP's, idle here) may deadlock a forked child; the
        # workers only run torch and the work, no lock another thread could hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_start, initargs=(work, threads))
    try:
        yield from pool.imap(_call, items)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def mapper(jobs: Callable[[int], tuple[int, int]]) -> Callable[[Callable[[T], Mapping[str, Any]], Sequence[T]],
                                                                Iterator[dict[str, Any]]]:
    """A search ``Mapper`` that evaluates a generation's genomes with ``local_map``; ``jobs(items)`` gives the
    processes and threads per process (``Context.jobs``)."""

    def map_locally(evaluate: Callable[[T], Mapping[str, Any]], items: Sequence[T]) -> Iterator[dict[str, Any]]:
        for result in local_map(evaluate, items, *jobs(len(items))):
            yield dict(result)

    return map_locally
