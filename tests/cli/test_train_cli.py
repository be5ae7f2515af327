"""qnas train / eval / baseline / finetune on a tiny config, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from qnas.cli.main import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TINY = str(HERE / "tiny.yaml")
W8 = str(ROOT / "policies/uniform_w8a8.yaml")
W4 = str(ROOT / "policies/uniform_w4a4.yaml")



def test_train_writes_the_run_folder(supernet_run: Path) -> None:
    assert {p.name for p in supernet_run.iterdir()} >= {"config.yaml", "checkpoint.pt", "train.log", "summary.json"}
    summary = json.loads((supernet_run / "summary.json").read_text())
    assert 0.0 <= summary["largest"]["miou"] <= 1.0 and summary["smallest"]["bitops"] < summary["largest"]["bitops"]
    assert "stage depth-2-4 epoch 1/1" in (supernet_run / "train.log").read_text()
    assert yaml.safe_load((supernet_run / "config.yaml").read_text())["train"]["batch_size"] == 4


def test_eval_json_keys(supernet_run: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["eval", "--config", TINY, "--supernet", str(supernet_run), "--policy", W8, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"miou", "per_class_iou", "pixel_acc", "macs", "bitops"}
    assert 0.0 <= result["miou"] <= 1.0 and len(result["per_class_iou"]) == 11
    assert main(["eval", "--config", TINY, "--supernet", str(supernet_run), "--policy", W8, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result  # deterministic


def test_rerun_without_resume_is_refused(supernet_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--config", TINY, "--out", str(supernet_run), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_with_another_config_is_refused(supernet_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    doc = yaml.safe_load(Path(TINY).read_text())
    doc["train"]["finetune_epochs"] = 2
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(doc))
    assert main(["train", "--config", str(other), "--out", str(supernet_run), "--resume", "--quiet"]) == 2
    assert "different config" in capsys.readouterr().err


def test_eval_errors_are_one_line(supernet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--config", TINY, "--supernet", str(tmp_path), "--policy", W8]) == 2
    assert "not a qnas run folder" in capsys.readouterr().err
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes((supernet_run / "checkpoint.pt").read_bytes()[:1000])
    assert main(["eval", "--config", TINY, "--supernet", str(broken), "--policy", W8]) == 2
    err = capsys.readouterr().err
    assert "truncated or foreign" in err and len(err.strip().splitlines()) == 1
    default = str(ROOT / "configs/digits.yaml")
    assert main(["eval", "--config", default, "--supernet", str(supernet_run), "--policy", W8]) == 2
    assert "different search space" in capsys.readouterr().err


def test_baseline_and_finetune(supernet_run: Path, tmp_path: Path) -> None:
    base = tmp_path / "w4"
    assert main(["baseline", "--config", TINY, "--policy", W4, "--out", str(base), "--quiet"]) == 0
    metrics = json.loads((base / "metrics.json").read_text())
    policy = yaml.safe_load((base / "policy.yaml").read_text())
    assert policy["metrics"]["miou"] == pytest.approx(metrics["miou"], abs=1e-6)
    assert policy["provenance"]["baseline"]["epochs"] == 2
    tuned = tmp_path / "ft"
    assert main(["finetune", "--config", TINY, "--supernet", str(supernet_run), "--policy", W4,
                 "--out", str(tuned), "--quiet"]) == 0
    assert (tuned / "metrics.json").exists() and (tuned / "checkpoint.pt").exists()
    # a fine-tuned run is evaluated like any other
    assert main(["eval", "--config", TINY, "--supernet", str(tuned), "--policy", W4, "--json"]) == 0
    # fine-tuning needs a supernet, not a baseline
    assert main(["finetune", "--config", TINY, "--supernet", str(base), "--policy", W4,
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2


def test_finetune_distils_from_the_teacher_it_is_given(supernet_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """--distill W --teacher P: the fine-tuning learns from that subnet of the supernet (recorded in the policy's
    provenance, and a different teacher trains a different network); a teacher that does not exist is refused in
    one line before anything is written."""
    runs = {}
    for teacher in ("largest", W4):
        out = tmp_path / Path(teacher).stem
        assert main(["finetune", "--config", TINY, "--supernet", str(supernet_run), "--policy", W4, "--out", str(out),
                     "--distill", "1.0", "--teacher", teacher, "--quiet"]) == 0
        provenance = yaml.safe_load((out / "policy.yaml").read_text())["provenance"]["finetune"]
        assert provenance["distill"] == 1.0 and provenance["teacher"] == teacher
        runs[teacher] = json.loads((out / "metrics.json").read_text())["miou"]
    assert runs["largest"] != runs[W4]
    capsys.readouterr()
    missing = tmp_path / "missing"
    assert main(["finetune", "--config", TINY, "--supernet", str(supernet_run), "--policy", W4, "--out", str(missing),
                 "--distill", "1.0", "--teacher", str(tmp_path / "nope.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and len(err.strip().splitlines()) == 1 and not missing.exists()
    with pytest.raises(SystemExit) as exit_:  # argparse refuses the value in one line
        main(["finetune", "--config", TINY, "--supernet", str(supernet_run), "--policy", W4, "--out", str(missing),
              "--distill", "-1", "--quiet"])
    assert exit_.value.code == 2 and "--distill" in capsys.readouterr().err
    assert main(["finetune", "--config", TINY, "--supernet", str(supernet_run), "--policy", W4, "--out", str(missing),
                 "--teacher", W4, "--quiet"]) == 2  # a teacher without a distillation weight
    assert "--distill" in capsys.readouterr().err and not missing.exists()
