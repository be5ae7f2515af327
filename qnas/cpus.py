"""The CPUs a command may use and how busy other processes keep them, and the OpenMP wait policy that
follows (torch-free, so that ``qnas.cli`` can decide before torch loads).

OpenMP threads that wait for work by spinning make a training step up to twice as fast on an idle
machine as threads that sleep (``OMP_WAIT_POLICY=PASSIVE``), because a step runs thousands of small
parallel regions and each wakes sleeping threads. Beside another busy process the spinning threads
wait for a partner the scheduler took away, and the step is about twice as slow as with passive
waiting. The CLI therefore measures the load once, when it starts, and waits passively only where
other processes already keep a CPU busy (``benchmarks/results/steady_under_load.md``).
"""

from __future__ import annotations

import functools
import os
import time

__all__ = ["usable_cpus", "busy_cpus", "busy_at_start", "wait_policy", "choose_wait_policy", "BUSY_THRESHOLD"]

BUSY_THRESHOLD = 0.5  # CPUs other processes keep busy from which OpenMP waits passively


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int, int, int]:
    """(busy jiffies of the machine, all jiffies, busy jiffies of this process, CPUs counted)."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    fields = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    idle = fields[3] + fields[4]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return sum(fields) - idle, sum(fields), int(own[11]) + int(own[12]), cpus


def busy_cpus(interval: float = 0.25) -> float | None:
    """How many CPUs other processes kept busy over ``interval`` seconds (None where /proc is missing)."""
    try:
        busy0, total0, own0, cpus = _cpu_times()
        time.sleep(interval)
        busy1, total1, own1, _ = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    # /proc/stat's totals run at cpus jiffies per tick of the clock; this process's own time runs at one
    return max(0.0, (busy1 - busy0 - (own1 - own0)) / (total1 - total0) * cpus)


@functools.cache
def busy_at_start() -> float | None:
    """``busy_cpus()`` measured once per process, at the first call (the CLI's start)."""
    return busy_cpus()


def wait_policy(busy: float | None) -> str | None:
    """The ``OMP_WAIT_POLICY`` for a machine where other processes keep ``busy`` CPUs busy: ``PASSIVE``
    from ``BUSY_THRESHOLD`` on, or where the load cannot be read; None (OpenMP's default: spin a
    while, then sleep) on an idle machine."""
    return "PASSIVE" if busy is None or busy >= BUSY_THRESHOLD else None


def choose_wait_policy(environ: dict[str, str] | None = None) -> str | None:
    """Set ``OMP_WAIT_POLICY`` in ``environ`` (default ``os.environ``) from the load at start, unless the
    user chose one; returns the policy in force (None: OpenMP's default). Call before torch loads."""
    env = os.environ if environ is None else environ
    if env.get("OMP_WAIT_POLICY"):
        return env["OMP_WAIT_POLICY"]
    policy = wait_policy(busy_at_start())
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    return policy
