"""The CLI as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qnas.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/digits.yaml")
W8 = str(ROOT / "policies/uniform_w8a8.yaml")


def _edited_policy(tmp_path: Path, edit) -> str:
    doc = yaml.safe_load(Path(W8).read_text())
    edit(doc["genome"])
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _edited_config(tmp_path: Path, edit) -> str:
    doc = yaml.safe_load(Path(CONFIG).read_text())
    edit(doc)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_sample_then_cost(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "p.yaml"
    assert main(["sample", "--config", CONFIG, "--seed", "4", "--out", str(out)]) == 0
    assert main(["cost", "--config", CONFIG, "--policy", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result) >= {"macs", "params", "bitops", "bitops_searchable"}
    assert result["bitops_searchable"] < result["bitops"]


def test_sample_is_seeded(capsys: pytest.CaptureFixture) -> None:
    main(["sample", "--config", CONFIG, "--seed", "1"])
    first = capsys.readouterr().out
    main(["sample", "--config", CONFIG, "--seed", "1"])
    assert capsys.readouterr().out == first
    main(["sample", "--config", CONFIG, "--seed", "2"])
    assert capsys.readouterr().out != first


def test_cost_ranks_uniform_policies(capsys: pytest.CaptureFixture) -> None:
    bitops = []
    for bits in (8, 6, 4):
        main(["cost", "--config", CONFIG, "--policy", str(ROOT / f"policies/uniform_w{bits}a{bits}.yaml"), "--json"])
        bitops.append(json.loads(capsys.readouterr().out)["bitops"])
    assert bitops[0] > bitops[1] > bitops[2]


BAD_POLICIES = {
    "5-bit layer": (lambda g: g.update({"s2.b1.pw1.wbits": 5}), "s2.b1.pw1.wbits: 5 is not allowed; allowed: [4, 6, 8]"),
    "unknown label": (lambda g: g.update({"s2.b1.pw3.wbits": 8}), "unknown genome label 's2.b1.pw3.wbits'"),
    "missing label": (lambda g: g.pop("hr.dw.abits"), "missing genome label 'hr.dw.abits'"),
    "depth 5": (lambda g: g.update({"s3.depth": 5}), "s3.depth: 5 is not allowed; allowed: [2, 3, 4]"),
}
BAD_CONFIGS = {
    "unknown key": (lambda c: c["space"].update({"width_mult": 2}), "space.width_mult: unknown key"),
    "non-numeric width": (lambda c: c["space"].update({"stage_channels": [32, "wide", 64]}),
                          "space.stage_channels[1]: expected an integer, got 'wide'"),
    "unknown dataset": (lambda c: c["data"].update({"dataset": "imagenet"}),
                        "data.dataset: 'imagenet' is not allowed; allowed: ['cityscapes', 'digits', 'folder']"),
    "class count": (lambda c: c["space"].update({"num_classes": 19}),
                    "space.num_classes: 19 does not match data.dataset 'digits', which has 11 classes"),
    "unknown network": (lambda c: c["space"].update({"network": "resnet"}),
                        "space.network: 'resnet' is not registered; registered: ['segnas']"),
}


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qnas.cli.main", *args], capture_output=True, text=True, cwd=ROOT)


def _one_line_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_bad_policy_is_one_line_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    edit, message = BAD_POLICIES[case]
    _one_line_exit_2(["cost", "--config", CONFIG, "--policy", _edited_policy(tmp_path, edit)], message, capsys)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    edit, message = BAD_CONFIGS[case]
    _one_line_exit_2(["sample", "--config", _edited_config(tmp_path, edit)], message, capsys)


def test_a_bad_input_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    """The same contract through the installed entry point: stderr is the one line, nothing else."""
    edit, message = BAD_POLICIES["5-bit layer"]
    proc = _run_cli("cost", "--config", CONFIG, "--policy", _edited_policy(tmp_path, edit))
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _run_cli("export", "--format", "tensorrt")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "invalid choice" in proc.stderr


def test_help_explains_every_command(capsys: pytest.CaptureFixture) -> None:
    from qnas.cli.main import COMMANDS

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and all(c.name in out for c in COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([command.name, "--help"])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and "--config" in out and command.description.split()[0] in out
