"""qnas search through the CLI on the tiny config: budgets hold, outputs are written, errors are clear."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from qnas.cli.main import main
from qnas.config import load_config
from qnas.cost import genome_cost
from qnas.space import SearchSpace, read_policy

HERE = Path(__file__).resolve().parent
TINY = str(HERE / "tiny.yaml")
W8 = str(HERE.parents[1] / "policies/uniform_w8a8.yaml")
W4 = str(HERE.parents[1] / "policies/uniform_w4a4.yaml")



def _bitops(genome) -> int:
    config = load_config(TINY)
    return genome_cost(config.space, genome, config.deploy.height, config.deploy.width).bitops


def test_search_under_a_relative_bitops_budget(supernet_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out),
                 "--bitops-budget", "0.5x:uniform_w8a8", "--quiet"]) == 0
    space = SearchSpace(load_config(TINY).space)
    budget = 0.5 * _bitops(read_policy(W8, space).genome)
    with open(out / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["bitops"]) <= budget for r in rows)
    assert all(_bitops(space.validate(json.loads(r["genome"]))) == float(r["bitops"]) for r in rows)
    best = read_policy(out / "best.yaml", space)
    assert _bitops(best.genome) <= budget
    assert best.metrics["search_val_miou"] == pytest.approx(max(float(r["miou"]) for r in rows), abs=1e-6)
    doc = yaml.safe_load((out / "best.yaml").read_text())
    assert {"config_hash", "supernet_checkpoint_hash", "budgets", "seed"} <= set(doc["provenance"])
    assert (out / "search.png").stat().st_size > 1000 and (out / "pareto.csv").exists()
    assert set(json.loads((out / "baselines.json").read_text())) == {"uniform_w8a8", "uniform_w6a6", "uniform_w4a4"}


def test_search_under_a_memory_budget(supernet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from qnas.cost.bitops import weight_memory_bytes

    out = tmp_path / "search"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out),
                 "--memory-budget", "0.6x:uniform_w8a8", "--quiet"]) == 0
    space = SearchSpace(load_config(TINY).space)
    budget = 0.6 * weight_memory_bytes(space.spec, read_policy(W8, space).genome)
    with open(out / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["memory"]) <= budget for r in rows)
    assert all(weight_memory_bytes(space.spec, space.validate(json.loads(r["genome"]))) == float(r["memory"])
               for r in rows)
    best = read_policy(out / "best.yaml", space)
    assert weight_memory_bytes(space.spec, best.genome) <= budget
    assert best.provenance["budgets"]["memory"] == pytest.approx(budget)  # beside the config's BitOps budget
    printed = capsys.readouterr().out
    assert f"memory budget {budget / 1024:.4g} KiB: best uses" in printed
    # an absolute budget below every genome's memory is refused in one line
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "none"),
                 "--memory-budget", "0.5", "--quiet"]) == 2
    assert "memory" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_random_control_and_impossible_budget(supernet_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "random"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out),
                 "--bitops-budget", "0.6x:uniform_w8a8", "--strategy", "random", "--quiet"]) == 0
    state = json.loads((out / "state.json").read_text())
    assert sum(len(g) for g in state["history"]) == 6 * 3  # population x generations, as evolution
    capsys.readouterr()
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "x"),
                 "--bitops-budget", "0.001", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "smallest achievable bitops is" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "y"),
                 "--bitops-budget", "half", "--quiet"]) == 2
    assert "not a number or FACTORx:POLICY" in capsys.readouterr().err
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "z"),
                 "--latency-budget", "3", "--quiet"]) == 2
    assert "needs --lut" in capsys.readouterr().err
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "z"),
                 "--backend", "ov-cpu", "--quiet"]) == 2
    assert "give the table with --lut" in capsys.readouterr().err


def test_compare_writes_the_table(supernet_run: Path, tmp_path: Path) -> None:
    lut = tmp_path / "lut.yaml"
    assert main(["latency-table", "--config", TINY, "--out", str(lut), "--repeats", "2", "--warmup", "1"]) == 0
    search = tmp_path / "search"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(search),
                 "--bitops-budget", "0.5x:uniform_w8a8", "--lut", str(lut), "--quiet"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", "--config", TINY, "--supernet", str(supernet_run), "--lut", str(lut), "--out", str(out),
                 "--backend", "ov-cpu", "--quiet", str(search / "best.yaml")]) == 0
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["precision"] for r in rows[1:]] == ["uniform W8A8", "uniform W6A6", "uniform W4A4"]
    assert rows[0]["precision"].startswith(("mixed", "uniform"))
    assert set(rows[0]) >= {"method", "miou", "gbitops", "gmacs", "params_m", "size_kb", "latency_pred_ms",
                            "latency_meas_ms", "latency_meas_ov-cpu_ms"}  # the openvino file, timed by OpenVINO
    assert all(float(r["latency_meas_ov-cpu_ms"]) > 0 for r in rows)
    w8, w4 = rows[1], rows[3]
    assert float(w4["size_kb"]) < float(w8["size_kb"]) and float(w4["gbitops"]) < float(w8["gbitops"])
    for row in rows:  # the numbers come from the runs' metrics files: tiny.yaml asks for two seeds
        mious = [json.loads((out / "runs" / row["method"] / f"seed{k}" / "metrics.json").read_text())["miou"]
                 for k in (0, 1)]
        assert float(row["miou"]) == pytest.approx(sum(mious) / 2, abs=1e-4) and row["seeds"] == "2"
        assert float(row["miou_std"]) == pytest.approx(abs(mious[0] - mious[1]) / 2**0.5, abs=1e-4)
    text = (out / "compare.md").read_text()
    assert "latency_meas_ov-cpu_ms" in text and "measured on ov-cpu" in text
    assert "| method |" in text and "Welch's 95% interval" in text and (out / "compare.png").stat().st_size > 1000


def test_a_budget_of_none_lifts_the_configs(supernet_run: Path, tmp_path: Path) -> None:
    """tiny.yaml sets a BitOps budget of 0.6x; --bitops-budget none searches without any (a teacher's search)."""
    out = tmp_path / "unbudgeted"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out),
                 "--bitops-budget", "none", "--strategy", "random", "--quiet"]) == 0
    assert yaml.safe_load((out / "best.yaml").read_text())["provenance"]["budgets"] == {}
    space = SearchSpace(load_config(TINY).space)
    with open(out / "evaluations.csv") as f:
        bitops = [float(r["bitops"]) for r in csv.DictReader(f)]
    assert max(bitops) > 0.6 * _bitops(read_policy(W8, space).genome)  # candidates beyond the config's budget


def test_search_of_the_bit_widths_alone(supernet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bits"
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out),
                 "--bitops-budget", "0.6x:uniform_w8a8", "--architecture", "uniform_w8a8", "--quiet"]) == 0
    space = SearchSpace(load_config(TINY).space)
    shape = space.architecture(read_policy(W8, space).genome)
    with open(out / "evaluations.csv") as f:
        genomes = [space.validate(json.loads(r["genome"])) for r in csv.DictReader(f)]
    assert len(genomes) > 3 and all(space.architecture(g) == shape for g in genomes)
    assert len({g for g in genomes}) == len(genomes)  # each a different mixed precision of the one network
    best = read_policy(out / "best.yaml", space)
    assert space.architecture(best.genome) == shape and _bitops(best.genome) <= 0.6 * _bitops(read_policy(W8, space).genome)
    assert best.provenance["architecture_of"] == "uniform_w8a8"
    capsys.readouterr()
    # the differentiable search relaxes every gene: refused in one line, nothing written
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "g"),
                 "--architecture", "uniform_w8a8", "--strategy", "gumbel", "--quiet"]) == 2
    assert "--architecture" in capsys.readouterr().err and not (tmp_path / "g").exists()
    assert main(["search", "--config", TINY, "--supernet", str(supernet_run), "--out", str(tmp_path / "n"),
                 "--architecture", "no_such_policy", "--quiet"]) == 2
    assert "no_such_policy" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_compare_fine_tunes_for_the_epochs_asked_and_keeps_each_recipe_apart(supernet_run: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """--finetune-epochs sets train.finetune_epochs (tiny.yaml: 1); a folder whose runs were fine-tuned for
    other epochs is refused in one line rather than reused as if they were this recipe's."""
    out = tmp_path / "cmp"
    assert main(["compare", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out), "--seeds", "1",
                 "--no-baselines", "--finetune-epochs", "2", "--quiet", W4]) == 0
    run = out / "runs" / "uniform_w4a4" / "seed0"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["finetune_epochs"] == 2
    assert "stage finetune epoch 2/2" in (run / "train.log").read_text()
    metrics = (run / "metrics.json").read_text()
    capsys.readouterr()
    assert main(["compare", "--config", TINY, "--supernet", str(supernet_run), "--out", str(out), "--seeds", "1",
                 "--no-baselines", "--quiet", W4]) == 2
    err = capsys.readouterr().err
    assert "train.finetune_epochs 2, not 1" in err and len(err.strip().splitlines()) == 1
    assert (run / "metrics.json").read_text() == metrics
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--config", TINY, "--out", str(out), "--finetune-epochs", "0", W4])
    assert exit_.value.code == 2 and "--finetune-epochs" in capsys.readouterr().err
