"""Work in forked worker processes: the same results, in order, as in one process; errors come back."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from qnas.config import load_config
from qnas.errors import QnasError
from qnas.pipeline.context import Context
from qnas.pipeline.parallel import jobs_and_threads, local_map
from qnas.pipeline.searching import compare, search, seed_run
from qnas.pipeline.sensitivity import sensitivity
from qnas.pipeline.threads import command_threads

TINY = str(Path(__file__).resolve().parents[1] / "cli" / "tiny.yaml")


def test_workers_run_one_thread_each_and_never_outnumber_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert jobs_and_threads(2, 2, 10) == (2, 1)
    assert jobs_and_threads(2, 8, 10) == (2, 1)  # a forked worker never starts an OpenMP team (libgomp)
    assert jobs_and_threads(4, 2, 10) == (4, 1)
    assert jobs_and_threads(4, 8, 3) == (3, 1)  # no idle worker
    assert jobs_and_threads(1, 8, 10) == (1, 8)  # one job: the command's own process and threads
    assert jobs_and_threads(2, 2, 1) == (1, 2)
    assert jobs_and_threads(0, 3, 10) == (3, 1)  # auto on a CPU: one process per thread
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert jobs_and_threads(4, 8, 10) == (1, 8)  # on a GPU the work stays in the command's process


def test_local_map_runs_a_closure_in_workers_and_keeps_the_order() -> None:
    weight = torch.arange(6.0).reshape(2, 3)  # a closure over a tensor: inherited by the forked workers

    def work(i: int) -> tuple[float, int, int]:
        import os

        return float((weight * i).sum()), os.getpid(), torch.get_num_threads()

    items = list(range(9))
    results = list(local_map(work, items, 2, 1))
    assert [r[0] for r in results] == [15.0 * i for i in items]
    import os

    assert os.getpid() not in {r[1] for r in results}
    assert {r[2] for r in results} == {1}
    assert [r[0] for r in local_map(work, items, 1, 1)] == [15.0 * i for i in items]  # one job: this process


def test_a_workers_error_is_raised_in_the_caller() -> None:
    def work(i: int) -> int:
        if i == 3:
            raise QnasError("item 3 is bad")
        return i

    with pytest.raises(QnasError, match="item 3 is bad"):
        list(local_map(work, list(range(6)), 2, 1))


def test_a_worker_runs_its_share_of_the_threads() -> None:
    shares = list(local_map(lambda _: (command_threads(4), torch.get_num_threads()), [0, 1], 2, 1))
    assert shares == [(1, 1), (1, 1)]


def test_an_error_the_caller_cannot_rebuild_still_arrives_as_one_line() -> None:
    from qnas.errors import FieldError

    def work(i: int) -> int:
        if i == 1:
            raise FieldError("train.jobs", "must be >= 0")  # its __init__ takes two arguments: not picklable as is
        return i

    with pytest.raises(QnasError, match="FieldError: train.jobs: must be >= 0"):
        list(local_map(work, [0, 1, 2], 2, 1))


def test_a_worker_that_dies_is_reported() -> None:
    import os

    def work(i: int) -> int:
        if i == 2:
            os._exit(9)  # as the kernel's out-of-memory killer would end it
        return i

    with pytest.raises(QnasError, match="worker process died"):
        list(local_map(work, list(range(5)), 2, 1))


def _context(jobs: int) -> Context:
    config = load_config(TINY)
    return Context(replace(config, train=replace(config.train, jobs=jobs)))


@pytest.mark.parametrize("jobs", [2])
def test_search_sensitivity_and_compare_give_the_same_results_in_workers(supernet_run: Path, tmp_path: Path,
                                                                         jobs: int) -> None:
    results = {}
    for n in (1, jobs):
        ctx = _context(n)
        out = tmp_path / f"jobs{n}"
        found = search(ctx, supernet_run, out / "search")
        with open(out / "search" / "evaluations.csv") as f:
            evaluations = list(csv.DictReader(f))
        rows = sensitivity(ctx, supernet_run, out / "sensitivity")
        policy = found.best
        compare(ctx, out / "compare", [policy], supernet_run=supernet_run, baselines=False, seeds=2)
        mious = [json.loads((seed_run(out / "compare", policy, k) / "metrics.json").read_text())["miou"]
                 for k in (0, 1)]
        results[n] = (evaluations, rows, mious)
    assert results[1][0] == results[jobs][0]
    assert results[1][1] == results[jobs][1]
    assert results[1][2] == results[jobs][2]


def _child_value(queue) -> None:
    queue.put(7)


def test_a_worker_may_start_processes_of_its_own() -> None:
    """A fine-tune on a file dataset starts DataLoader processes: workers are not daemonic."""
    import multiprocessing

    def work(i: int) -> int:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child_value, args=(queue,))
        child.start()
        value = queue.get(timeout=30)
        child.join()
        return i + value

    assert list(local_map(work, [0, 1], 2, 1)) == [7, 8]
