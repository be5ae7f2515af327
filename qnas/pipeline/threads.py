"""How many threads a command uses: the CPUs it may run on, less those other processes keep busy.

Two OpenMP threads on a 2-CPU machine that also runs one other busy process do not get 2 CPUs, and
every barrier waits for the thread the scheduler took away. Unless ``train.threads`` says otherwise,
a command uses the CPUs that are idle when it starts (measured once, ``qnas.cpus.busy_at_start``,
which also chose the OpenMP wait policy in ``qnas.cli`` before torch loaded).
"""

from __future__ import annotations

import functools
import os

from qnas.cpus import busy_at_start, busy_cpus, usable_cpus

__all__ = ["usable_cpus", "busy_cpus", "idle_threads", "command_threads", "set_worker_threads"]

_WORKER_THREADS: int | None = None  # set in a worker process of ``qnas.pipeline.parallel``: its share


@functools.cache
def idle_threads() -> int:
    """Threads for this process: ``OMP_NUM_THREADS`` where the user set it, else its usable CPUs less the
    ones others keep busy (at least 1, measured once per process: ``busy_at_start``), shared among the
    processes torchrun started on this machine."""
    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    cpus = usable_cpus()
    busy = busy_at_start()
    idle = cpus if busy is None else max(1, min(cpus, cpus - int(busy + 0.5)))
    # under torchrun the processes of one machine share its idle CPUs
    return max(1, idle // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def set_worker_threads(threads: int) -> None:
    """Make ``command_threads`` answer ``threads`` in this process (a worker of ``qnas.pipeline.parallel``)."""
    global _WORKER_THREADS
    _WORKER_THREADS = threads


def command_threads(configured: int) -> int:
    """Torch threads for this process: a worker's share, else ``configured`` (``train.threads``), else
    ``idle_threads()``."""
    return _WORKER_THREADS or configured or idle_threads()
