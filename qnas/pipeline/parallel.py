"""Independent pieces of work in several processes of this machine: a search generation's evaluations,
the precision-sensitivity variants, a comparison's fine-tunes.

Small convolutions do not keep two OpenMP threads busy: on the 2-core development machine two
one-thread processes evaluate subnets about 1.2x faster than one two-thread process, and fine-tune
about 1.1x faster (``benchmarks/results/parallel_jobs.md``). ``local_map`` forks the workers, so the
work may be any function, a closure over a loaded supernet included. Each worker runs one torch thread
(a forked child of a process that used an OpenMP team must not start another: libgomp can deadlock),
ignores Ctrl-C (the parent stops it) and ends when the parent dies. Results come back in order, as
from ``map``; an error in a worker is raised in the caller, and a worker that dies is reported as one.
Under torchrun, ranks already share the work (``qnas.pipeline.distributed``); on a GPU, and under
torchrun, the work stays in the command's own process.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from qnas.errors import QnasError
from qnas.pipeline.distributed import rank_and_world, shared_map
from qnas.pipeline.threads import set_worker_threads

__all__ = ["jobs_and_threads", "local_map", "mapper"]

T = TypeVar("T")
R = TypeVar("R")

_WORK: Callable[[Any], Any] | None = None  # the function a forked worker runs (inherited, never pickled)
_PR_SET_PDEATHSIG = 1


def jobs_and_threads(jobs: int, threads: int, items: int) -> tuple[int, int]:
    """Worker processes and torch threads per process for ``items`` pieces of work. On a CPU outside torchrun:
    ``jobs`` processes (0: one per thread), at most one per item, each with one thread; a single job keeps the
    work in the command's own process with its ``threads``. On a GPU or under torchrun: that single job."""
    if torch.cuda.is_available() or rank_and_world()[1] > 1:
        return 1, threads
    jobs = max(1, min(jobs or threads, items))
    return (jobs, 1) if jobs > 1 else (1, threads)


def _start(work: Callable[[Any], Any], threads: int) -> None:
    global _WORK
    _WORK = work
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # not the parent's progress display
    try:  # end with the parent (Linux): a worker left running would hold the parent's folder lock
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    set_worker_threads(threads)
    torch.set_num_threads(threads)


def _call(item: Any) -> Any:
    assert _WORK is not None
    try:
        return _WORK(item)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # an error the parent could not rebuild: its type and message
            raise QnasError(f"{type(exc).__name__}: {exc}") from None
        raise


def local_map(work: Callable[[T], R], items: Sequence[T], jobs: int, threads: int) -> Iterator[R]:
    """``work(item)`` for every item, yielded in order, from ``jobs`` forked processes of ``threads`` torch threads
    each (``jobs_and_threads``); with one job, in this process."""
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield work(item)
        return
    with warnings.catch_warnings():
        # Python warns that forking a process with threads (OpenMP's, idle here) may deadlock the child; the
        # workers run torch with one thread and the work, no lock another thread could hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_start,
                                   initargs=(work, threads))
    finished = False
    try:
        yield from pool.map(_call, items)
        finished = True
    except BrokenProcessPool:
        raise QnasError("a worker process died (out of memory?); with train.jobs: 1 the work runs in this "
                        "process") from None
    finally:
        if not finished:  # an error, Ctrl-C, or a caller that stopped reading: stop the work still running
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def mapper(jobs: Callable[[int], tuple[int, int]]) -> Callable[[Callable[[T], Mapping[str, Any]], Sequence[T]],
                                                                Iterator[dict[str, Any]]]:
    """A search ``Mapper``: under torchrun the ranks' ``shared_map``, else ``local_map``, whose processes and
    threads per process ``jobs(items)`` gives (``Context.jobs``)."""
    if rank_and_world()[1] > 1:
        return shared_map

    def map_locally(evaluate: Callable[[T], Mapping[str, Any]], items: Sequence[T]) -> Iterator[dict[str, Any]]:
        for result in local_map(evaluate, items, *jobs(len(items))):
            yield dict(result)

    return map_locally
