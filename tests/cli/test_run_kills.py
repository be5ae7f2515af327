"""`qnas run` killed (SIGKILL) at random instants and resumed finishes with the report of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TINY = str(HERE / "tiny.yaml")


def _run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qnas.cli.main", "run", "--config", TINY, "--out", str(out),
                             "--quiet", *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def comparable(report: str) -> str:
    """The report without what a rerun may measure differently: wall times, latencies, the folder name."""
    report = report.split("## Stages run")[0]
    report = re.sub(r"run folder `[^`]*`", "run folder", report)
    report = re.sub(r"MAPE [0-9.]+%,\s*Kendall tau [-0-9.]+ \(MACs alone: [-0-9.]+\)", "MAPE", report)
    # the table's offset: fitted to measurements, or not fitted (a fit is refused on what was measured)
    report = re.sub(r"The table's (?:constant offset was|offsets were) then fitted to them [^\n]*"
                    r"|Its (?:constant offset was|offsets were) not fitted[^\n]*|The table's overhead is [^\n]*",
                    "(the table's offset)", report)
    rows = []
    for line in report.splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) >= 9 and "latency" not in line:
            line = " | ".join(cells[:-2])  # the predicted and measured latency columns
        rows.append(line)
    return "\n".join(rows)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    out = tmp_path_factory.mktemp("whole") / "run"
    tic = time.perf_counter()
    proc = _run(out)
    assert proc.wait() == 0, proc.stderr.read().decode()
    return comparable((out / "report.md").read_text()), time.perf_counter() - tic


def _kill_and_resume(tmp_path: Path, at: float, expected: str) -> None:
    out = tmp_path / f"run_{at:.1f}"
    proc = _run(out)
    time.sleep(at)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = _run(out, "--resume")
    assert resumed.wait() == 0, (at, resumed.stderr.read().decode()[-2000:])
    assert comparable((out / "report.md").read_text()) == expected, at
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob("*.lock"))  # no temporary file or lock left


@pytest.mark.slow  # 2.5 minutes; the default run simulates a kill in tests/cli/test_run.py
def test_one_kill_during_the_run(uninterrupted, tmp_path: Path) -> None:
    expected, seconds = uninterrupted
    _kill_and_resume(tmp_path, 0.45 * seconds, expected)


@pytest.mark.slow
def test_ten_kills_at_random_instants(uninterrupted, tmp_path: Path) -> None:
    expected, seconds = uninterrupted
    for at in sorted(np.random.default_rng(2026).uniform(2.0, 0.95 * seconds, 10)):
        _kill_and_resume(tmp_path, float(at), expected)
