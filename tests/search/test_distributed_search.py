"""A search whose ranks share each generation's evaluations ends exactly where a single process ends.

The driver-level tests run fake ranks as threads of this process (torch-free): every rank runs the
same ``Search`` on the same folder, rank r evaluates the new genomes i with i % world == r, the
results are gathered to every rank after each round, and only rank 0 writes. The acceptance test
runs the pipeline's search in two gloo processes on the tiny config; the CLI under ``torchrun``
with a real kill is a slow test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from qnas.errors import QnasError
from qnas.search import Candidate, Search, SearchSettings, generation_strategies
from qnas.space import Genome, SearchSpace
from tests.search.test_search import SMALL, FakeEvaluator, _budget

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "cli" / "tiny.yaml"


# -- fake ranks (threads), torch-free ----------------------------------------------------------------------
class _Killed(Exception):
    pass


class FakeGroup:
    """``world`` fake ranks in threads of this process, with an all-gather built on a barrier."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.barrier = threading.Barrier(world, timeout=60)
        self.slots: list[Any] = [None] * world

    def all_gather(self, rank: int, value: Any) -> list[Any]:
        self.slots[rank] = value
        self.barrier.wait()
        gathered = list(self.slots)
        self.barrier.wait()  # nobody overwrites a slot before every rank has read them all
        return gathered

    def mapper(self, rank: int) -> Callable[..., Iterator[Mapping[str, float]]]:
        def shared(evaluator: Callable[[Genome], Mapping[str, float]],
                   genomes: Sequence[Genome]) -> Iterator[Mapping[str, float]]:
            for start in range(0, len(genomes), self.world):
                index = start + rank
                mine = evaluator(genomes[index]) if index < len(genomes) else None
                yield from self.all_gather(rank, mine)[:min(self.world, len(genomes) - start)]

        return shared

    def run(self, work: Callable[[int], Any]) -> list[Any]:
        """``work(rank)`` on every rank; the first error of any rank is raised (the others are released)."""
        results: list[Any] = [None] * self.world
        errors: list[BaseException | None] = [None] * self.world

        def target(rank: int) -> None:
            try:
                results[rank] = work(rank)
            except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
                errors[rank] = exc
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        raised = [e for e in errors if e is not None]
        if raised:  # the cause, not the other ranks' broken barrier
            raise next((e for e in raised if not isinstance(e, threading.BrokenBarrierError)), raised[0])
        return results


class Recorder:
    """A ``SearchMonitor`` that records what it is told and can stop the search after ``stop`` candidates."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop = stop
        self.done: list[tuple[Genome, int]] = []

    def evaluated(self, candidate: Candidate, done: int, total: int) -> None:
        self.done.append((candidate.genome, done))
        if done == self.stop:
            raise _Killed

    def generation_done(self, generation: int, parents: Sequence[Candidate], best: Candidate) -> None:
        pass


def _shared_search(space: SearchSpace, settings: SearchSettings, folder: Path, world: int, *, stop: int | None = None,
                   resume: bool = False):
    """Every rank's (search, evaluator, monitor, history) of one search on ``world`` fake ranks."""
    group = FakeGroup(world)

    def rank_search(rank: int):
        evaluator, monitor = FakeEvaluator(), Recorder(stop)
        search = Search(space, [_budget(space, 0.5)], evaluator, settings, folder, monitor,
                        mapper=group.mapper(rank), writer=rank == 0)
        try:
            history = search.run(resume=resume)
        except _Killed:
            history = None
        return search, evaluator, monitor, history

    return group.run(rank_search)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("strategy", generation_strategies())
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_sharing_evaluations_equal_one_process(small_space: SearchSpace, tmp_path: Path, strategy: str,
                                                     world: int) -> None:
    settings = SearchSettings(**SMALL, strategy=strategy)
    alone_monitor = Recorder()
    alone = Search(small_space, [_budget(small_space, 0.5)], FakeEvaluator(), settings, tmp_path / "alone",
                   alone_monitor)
    expected = alone.run()
    ranks = _shared_search(small_space, settings, tmp_path / "shared", world)
    assert _files(tmp_path / "shared") == _files(tmp_path / "alone")  # rank 0's log and state; nobody else wrote
    for search, _, monitor, history in ranks:
        assert history == expected and search.best() == alone.best()
        assert monitor.done == alone_monitor.done  # every rank's progress advances candidate by candidate
    calls = [set(evaluator.calls) for _, evaluator, _, _ in ranks]
    assert all(calls) and sum(map(len, calls)) == len(set().union(*calls)) == len(alone.cache)  # split, none twice


@pytest.mark.parametrize("stop", [4, 15, 27])
def test_ranks_resume_where_one_process_ends(small_space: SearchSpace, tmp_path: Path, stop: int) -> None:
    settings = SearchSettings(**SMALL)
    alone = Search(small_space, [_budget(small_space, 0.5)], FakeEvaluator(), settings, tmp_path / "alone")
    expected = alone.run()
    for name, world_after in (("again-shared", 3), ("again-alone", 1)):  # a shared search resumes either way
        folder = tmp_path / name
        killed = _shared_search(small_space, settings, folder, 3, stop=stop)
        assert all(history is None for *_, history in killed)
        logged = {small_space.validate(json.loads(line)["genome"])
                  for line in (folder / "evaluations.jsonl").read_text().splitlines()}
        assert {genome for genome, _ in killed[0][2].done} <= logged  # every candidate reported was logged
        resumed = _shared_search(small_space, settings, folder, world_after, resume=True)
        for search, _, _, history in resumed:
            assert [c.genome for c in history] == [c.genome for c in expected] and search.best() == alone.best()
        assert not logged & set().union(*(e.calls for _, e, _, _ in resumed))  # no logged evaluation is redone
        assert _files(folder) == _files(tmp_path / "alone")  # the same log and the same final state


def test_a_rank_that_does_not_write_writes_nothing(small_space: SearchSpace, tmp_path: Path) -> None:
    search = Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path / "x", writer=False)
    search.run()
    assert search.cache and list((tmp_path / "x").iterdir()) == []


def test_a_mapper_that_loses_results_is_refused(small_space: SearchSpace, tmp_path: Path) -> None:
    def lossy(evaluator, genomes):
        yield from (evaluator(g) for g in genomes[:-1])

    with pytest.raises(QnasError, match="fewer results than the 12 genomes"):
        Search(small_space, [], FakeEvaluator(), SearchSettings(**SMALL), tmp_path, mapper=lossy).run()


# -- two gloo processes running the pipeline's search on the tiny config -----------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _small_config(folder: Path) -> Path:
    """tests/cli/tiny.yaml with a smaller search (12 candidates in 3 generations) and one torch thread per
    process, so that both sides compute alike."""
    doc = yaml.safe_load(TINY.read_text())
    doc["train"]["threads"] = 1
    doc["search"].update(population=4, parents=2, mutants=2, crossovers=2, generations=3)
    path = folder / "tiny1.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class _StopAfter:
    """A pipeline ``Reporter`` whose search monitor stops the search after ``n`` candidates (a simulated kill)."""

    def __init__(self, n: int | None) -> None:
        self.n = n

    def searching(self, total: int):
        from contextlib import nullcontext

        return nullcontext(Recorder(self.n))

    def message(self, text: str) -> None:
        pass


def _search_worker(rank: int, world: int, port: int, config: str, supernet: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from qnas.config import load_config
    from qnas.pipeline import Context, search
    from qnas.pipeline.distributed import shared_map
    from qnas.train.subnet import SupernetEvaluator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    calls: dict[str, int] = {}
    evaluate = SupernetEvaluator.__call__

    def counted(self, genome):
        calls[current] = calls.get(current, 0) + 1
        return evaluate(self, genome)

    SupernetEvaluator.__call__ = counted  # this process only: how many evaluations this rank did
    try:
        ctx = Context(load_config(config), policy_dirs=[ROOT / "policies"])
        current = "whole"
        search(ctx, supernet, Path(out) / "whole")
        current = "cut"
        with pytest.raises(_Killed):
            search(ctx, supernet, Path(out) / "cut", reporter=_StopAfter(6))  # mid-generation 1
        current = "resumed"
        search(ctx, supernet, Path(out) / "cut", resume=True)
        (Path(out) / f"calls{rank}.json").write_text(json.dumps(calls))

        def fails_on_3(i: int) -> dict[str, float]:
            if i == 3:
                raise ValueError("three")
            return {"i": float(i)}

        assert list(shared_map(fails_on_3, [0, 1, 2])) == [{"i": 0.0}, {"i": 1.0}, {"i": 2.0}]
        expected = (ValueError, "three") if rank == 1 else (QnasError, "rank 1 failed to evaluate item 3: ValueError")
        with pytest.raises(expected[0], match=expected[1]):  # on every rank, none left waiting
            list(shared_map(fails_on_3, [0, 1, 2, 3, 4]))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_search_as_one(supernet_run: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from qnas.config import load_config
    from qnas.pipeline import Context, search

    config = _small_config(tmp_path)
    alone = tmp_path / "alone"
    search(Context(load_config(config), policy_dirs=[ROOT / "policies"]), supernet_run, alone)
    mp.spawn(_search_worker, args=(2, _free_port(), str(config), str(supernet_run), str(tmp_path)), nprocs=2,
             join=True)
    expected = _files(alone)
    for folder in ("whole", "cut"):  # uninterrupted, and interrupted then resumed
        found = _files(tmp_path / folder)
        assert set(found) == set(expected)
        for name in ("evaluations.jsonl", "state.json", "best.yaml", "baselines.json", "evaluations.csv", "pareto.csv"):
            assert found[name] == expected[name], (folder, name)
    calls = [json.loads((tmp_path / f"calls{r}.json").read_text()) for r in range(2)]
    evaluations = len(expected["evaluations.jsonl"].splitlines()) + 3  # and the three uniform baselines
    assert all(c["whole"] > 0 for c in calls) and sum(c["whole"] for c in calls) == evaluations
    cut = [c["cut"] + c["resumed"] for c in calls]
    assert sum(cut) <= evaluations + 2  # the round in flight at the interruption (one genome per rank) at most


def _torchrun(config: Path, supernet: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "qnas.cli.main", "search", "--config", str(config), "--supernet", str(supernet), "--out", str(out),
               "--quiet", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


@pytest.mark.slow  # about a minute: three torchrun launches
def test_torchrun_search_killed_and_resumed_equals_one_process(supernet_run: Path, tmp_path: Path) -> None:
    from qnas.cli.main import main

    config = _small_config(tmp_path)
    assert main(["search", "--config", str(config), "--supernet", str(supernet_run), "--out", str(tmp_path / "alone"),
                 "--quiet"]) == 0
    expected = _files(tmp_path / "alone")
    whole = _torchrun(config, supernet_run, tmp_path / "whole")
    output = whole.communicate(timeout=300)[0].decode()
    assert whole.returncode == 0, output[-3000:]
    assert output.count("best of 12 evaluated genomes") == 1  # rank 0 reports, the other rank stays quiet

    cut = tmp_path / "cut"
    killed = _torchrun(config, supernet_run, cut)
    log, deadline = cut / "evaluations.jsonl", time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        if log.exists() and len(log.read_bytes().splitlines()) >= 5:  # mid-generation 1
            os.killpg(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL and not (cut / "best.yaml").exists()
    resumed = _torchrun(config, supernet_run, cut, "--resume")
    output = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, output[-3000:]
    for folder in (tmp_path / "whole", cut):
        found = _files(folder)
        for name in ("evaluations.jsonl", "state.json", "best.yaml", "baselines.json", "evaluations.csv", "pareto.csv"):
            assert found[name] == expected[name], (folder.name, name)
    assert not list(cut.glob(".*"))  # no lock or temporary file left behind
