"""Strategy gumbel end to end on the tiny config: the budget holds, the outputs of every strategy plus the
log and the probability plot, and a search killed mid-way resumes to where an uninterrupted one ends."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from qnas.cli.main import main
from qnas.config import load_config
from qnas.cost import genome_cost
from qnas.pipeline import Context, search
from qnas.pipeline.gumbel import LOG, STATE
from qnas.pipeline.progress import Reporter
from qnas.space import SearchSpace, read_policy

HERE = Path(__file__).resolve().parents[1] / "cli"
W8 = HERE.parents[1] / "policies" / "uniform_w8a8.yaml"


def _config(tmp_path: Path, **gumbel) -> Path:
    doc = yaml.safe_load((HERE / "tiny.yaml").read_text())
    doc["search"].update(strategy="gumbel", gumbel={"steps": 7, "checkpoint_every": 3, "samples": 2, **gumbel})
    path = tmp_path / "gumbel.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_gumbel_search_meets_the_budget_and_writes_its_outputs(supernet_run: Path, tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    out = tmp_path / "search"
    assert main(["search", "--config", str(config_path), "--supernet", str(supernet_run), "--out", str(out),
                 "--bitops-budget", "0.4x:uniform_w8a8", "--quiet"]) == 0
    config = load_config(config_path)
    space = SearchSpace(config.space)
    hw = (config.deploy.height, config.deploy.width)
    budget = 0.4 * genome_cost(config.space, read_policy(W8, space).genome, *hw).bitops
    best = read_policy(out / "best.yaml", space)
    assert genome_cost(config.space, best.genome, *hw).bitops <= budget
    provenance = yaml.safe_load((out / "best.yaml").read_text())["provenance"]
    assert provenance["searched_by"] == "qnas search --strategy gumbel" and provenance["steps"] == 7
    log = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(7))
    assert log[0]["tau"] == 5.0 and log[-1]["tau"] == pytest.approx(1.0)
    assert set(log[0]["probs"]) == {g.label for g in space.genes()}
    assert all(0 < e["targets"]["bitops"] <= 1 for e in log)
    for name in ("probabilities.png", "search.png", "evaluations.csv", "baselines.json", STATE):
        assert (out / name).exists(), name


class _FirstStep(Reporter):
    """Records the first step a search reports done."""

    def __init__(self) -> None:
        self.first: int | None = None

    @contextlib.contextmanager
    def steps(self, title: str):
        def advance(label: str, done: int, total: int) -> None:
            self.first = done if self.first is None else self.first

        yield advance


class _KillAt(Reporter):
    """Raises KeyboardInterrupt once step ``at`` is done, as a kill would end the process there."""

    def __init__(self, at: int) -> None:
        self.at = at

    @contextlib.contextmanager
    def steps(self, title: str):
        def advance(label: str, done: int, total: int) -> None:
            if done == self.at:
                raise KeyboardInterrupt

        yield advance


def _final(out: Path) -> tuple[list[dict], dict, dict]:
    log = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (out / LOG).read_text().splitlines()]
    state = torch.load(out / STATE, weights_only=True)
    return log, state["theta"], yaml.safe_load((out / "best.yaml").read_text())["genome"]


def test_a_killed_gumbel_search_resumes_to_where_an_uninterrupted_one_ends(supernet_run: Path, tmp_path: Path) -> None:
    ctx = Context(load_config(_config(tmp_path, prune_below=0.3, lr=0.5)))  # pruning happens
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    search(ctx, supernet_run, whole, bitops_budget="0.5x:uniform_w8a8")
    with pytest.raises(KeyboardInterrupt):
        search(ctx, supernet_run, killed, bitops_budget="0.5x:uniform_w8a8", reporter=_KillAt(5))
    assert len((killed / LOG).read_text().splitlines()) == 5  # steps 0-4 logged; the state is from step 3
    first = _FirstStep()
    search(ctx, supernet_run, killed, bitops_budget="0.5x:uniform_w8a8", resume=True, reporter=first)
    assert first.first == 4  # resumed from the state of step 3, not from the start
    log, theta, genome = _final(whole)
    log2, theta2, genome2 = _final(killed)
    assert any(e["pruned"] for e in log)
    assert log2 == log
    assert all(torch.equal(theta[k], theta2[k]) for k in theta)
    assert genome2 == genome


def test_a_folder_of_another_strategy_is_refused(supernet_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "search"
    out.mkdir()
    (out / "state.json").write_text("{}")
    args = ["search", "--config", str(_config(tmp_path)), "--supernet", str(supernet_run), "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "holds a search of a generation strategy" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["state.json"]
