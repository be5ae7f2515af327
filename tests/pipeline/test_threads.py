"""Thread count: a command leaves the CPUs other processes keep busy to them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from qnas.pipeline.threads import busy_cpus, idle_threads, usable_cpus


def test_a_busy_process_is_seen_and_left_its_cpu() -> None:
    assert 1 <= idle_threads() <= usable_cpus()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cpus(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    if busy is None:  # no /proc: nothing is measured, all CPUs are used
        return
    assert busy >= 0.5  # the spinner holds (nearly) one CPU whatever else runs
