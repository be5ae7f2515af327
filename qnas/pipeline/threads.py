"""How many threads a command uses: the CPUs it may run on, less those other processes keep busy.

Two OpenMP threads on a 2-CPU machine that also runs one other busy process do not get 2 CPUs;
with OpenMP's default active waiting every barrier then spins until the other process is
descheduled, and a training step takes up to ten times longer. The CLI therefore asks OpenMP to
wait passively (``OMP_WAIT_POLICY``, set before torch starts, in ``qnas.cli``) and, unless
``train.threads`` says otherwise, uses the CPUs that are idle when the command starts.
"""

from __future__ import annotations

import functools
import os
import time

__all__ = ["usable_cpus", "busy_cpus", "idle_threads"]


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
def idle_threads() -> int:
    """Threads for this process: ``OMP_NUM_THREADS`` where the user set it, else its usable CPUs less the
    ones others keep busy (at least 1), shared among the processes torchrun started on this machine,
    measured once, at the first call (``Context.setup_torch``, before
    a command's work starts)."""
    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    cpus = usable_cpus()
    busy = busy_cpus()
    idle = cpus if busy is None else max(1, min(cpus, cpus - int(busy + 0.5)))
    # under torchrun the processes of one machine share its idle CPUs
    return max(1, idle // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
