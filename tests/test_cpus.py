"""The load probe and the OpenMP wait policy it picks (``qnas.cpus``): spin on an idle machine, wait
passively beside a busy process, keep what the user set, and decide before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from qnas.cpus import BUSY_THRESHOLD, busy_cpus, choose_wait_policy, usable_cpus, wait_policy


def test_the_policy_follows_the_load() -> None:
    assert wait_policy(0.0) is None  # idle: OpenMP's default, threads spin a while before sleeping
    assert wait_policy(BUSY_THRESHOLD - 0.01) is None
    assert wait_policy(BUSY_THRESHOLD) == "PASSIVE"
    assert wait_policy(1.0) == "PASSIVE"
    assert wait_policy(None) == "PASSIVE"  # no /proc: the safe choice


def test_a_policy_the_user_set_is_kept() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert choose_wait_policy(env) == "ACTIVE" and env == {"OMP_WAIT_POLICY": "ACTIVE"}


def _policy_of_the_cli(env: dict[str, str]) -> str:
    probe = ("import os, sys; import qnas.cli; "
             "print(os.environ.get('OMP_WAIT_POLICY', 'default'), 'torch' in sys.modules)")
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_cli_waits_passively_beside_a_busy_process_and_decides_before_torch_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    seen = []
    try:
        time.sleep(0.3)
        # the spinner holds (nearly) one CPU whatever else runs, unless the host pauses the virtual CPU it runs on:
        # on the 2-core VM a probe once read 0.02 busy CPUs beside it; a paused CPU is not a busy one, so look again
        for _ in range(3):
            busy = busy_cpus(0.5)
            policy, torch_loaded = _policy_of_the_cli(env).split()
            assert torch_loaded == "False"
            seen.append((busy, policy))
            if busy is None or (busy >= BUSY_THRESHOLD and policy == "PASSIVE"):
                break
    finally:
        spinner.kill()
        spinner.wait()
    busy, policy = seen[-1]
    assert busy is None or (busy >= BUSY_THRESHOLD and policy == "PASSIVE"), seen
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert _policy_of_the_cli(env) == "ACTIVE False"


def test_usable_cpus_is_at_least_one() -> None:
    assert usable_cpus() >= 1
