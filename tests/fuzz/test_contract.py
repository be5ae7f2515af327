"""Hostile input through the CLI: every refusal is one line on stderr, exit code 2, no traceback, and
nothing is written where the user pointed. Hypothesis generates the malformed configs, policies, budgets,
latency tables, checkpoints, output paths and option values; ``CASES`` records how many each category tries
(printed by the last test with ``-s``). The default run is derandomized and quick; ``QNAS_FUZZ_SCALE=10``
tries ten times as many cases, drawn afresh."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from qnas.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "cli" / "tiny.yaml"
W8 = ROOT / "policies" / "uniform_w8a8.yaml"
BASE_CONFIG = yaml.safe_load(TINY.read_text())
BASE_POLICY = yaml.safe_load(W8.read_text())
SCALE = float(os.environ.get("QNAS_FUZZ_SCALE", "1"))  # QNAS_FUZZ_SCALE=10 tries ten times as many cases


def fuzz(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CASES: dict[str, int] = {}  # examples tried per category (printed with -s)

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=12), st.lists(st.integers(-3, 300), max_size=4),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def contract(argv: list[str], capsys: pytest.CaptureFixture, category: str, allowed: tuple[int, ...] = (0, 2)) -> int:
    """Run the CLI in-process: exit 0 or 2; a refusal is exactly one stderr line, never a traceback."""
    CASES[category] = CASES.get(category, 0) + 1
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = int(exc.code)
    err = capsys.readouterr().err
    assert code in allowed, (argv, code, err)
    assert "Traceback" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and " error: " in err, err
    return code


def _write(path: Path, doc) -> str:
    path.write_text(yaml.safe_dump(doc, sort_keys=False) if not isinstance(doc, str) else doc)
    return str(path)


def _leaves(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, prefix + (k,))
    elif isinstance(doc, list) and doc and not isinstance(doc[0], (dict, list)):
        yield prefix
    elif not isinstance(doc, (dict, list)):
        yield prefix
    else:
        for i, v in enumerate(doc):
            yield from _leaves(v, prefix + (i,))


CONFIG_LEAVES = list(_leaves(BASE_CONFIG))


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


# -- config ----------------------------------------------------------------------------------------------
@fuzz(120)
@example(edits=[], extra=("space", "\n"))  # found at QNAS_FUZZ_SCALE=10: a key that is a line break
@given(edits=st.lists(st.tuples(st.sampled_from(CONFIG_LEAVES), junk), min_size=1, max_size=3),
       extra=st.one_of(st.none(), st.tuples(st.sampled_from(["space", "data", "train", "search", "compare", ""]),
                                            st.text(min_size=1, max_size=8))))
def test_malformed_configs(edits, extra, tmp_path_factory, capsys) -> None:
    doc = copy.deepcopy(BASE_CONFIG)
    for path, value in edits:
        _set(doc, path, value)
    if extra:
        section, key = extra
        (doc.setdefault(section, {}) if section else doc)[key] = 1 if section else {"x": 1}
    folder = tmp_path_factory.mktemp("cfg")
    contract(["sample", "--config", _write(folder / "c.yaml", doc)], capsys, "config")


@pytest.mark.parametrize("text", ["", "[1, 2", "- a\n- b", "space: 3", "seed: .nan", "train: {lr: .inf}",
                                  "data: {dataset: voc}", "space: {network: resnet}", "\x00\x01", "search: {seed: -1}"])
def test_broken_config_files(text, tmp_path, capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode())
    contract(["sample", "--config", str(path)], capsys, "config")
    contract(["sample", "--config", str(tmp_path / "missing.yaml")], capsys, "config", allowed=(2,))


# -- policy ----------------------------------------------------------------------------------------------
LABELS = list(BASE_POLICY["genome"])


@fuzz(150)
@given(changes=st.lists(st.tuples(st.one_of(st.sampled_from(LABELS), st.text(max_size=10), st.integers(0, 9)), junk),
                        min_size=1, max_size=4),
       drop=st.lists(st.sampled_from(LABELS), max_size=2), top=st.sampled_from(["genome", "name", "metrics", "x"]))
def test_malformed_policies(changes, drop, top, tmp_path_factory, capsys) -> None:
    doc = copy.deepcopy(BASE_POLICY)
    for label, value in changes:
        doc["genome"][label] = value
    for label in drop:
        doc["genome"].pop(label, None)
    if top != "genome":
        doc[top] = changes[0][1]
    folder = tmp_path_factory.mktemp("pol")
    contract(["cost", "--config", str(TINY), "--policy", _write(folder / "p.yaml", doc)], capsys, "policy")


@pytest.mark.parametrize("text", ["", "genome: 3", "[1]", "genome: {1: 2}", "genome:\n  s1.depth: [2]", "{{{"])
def test_broken_policy_files(text, tmp_path, capsys) -> None:
    contract(["cost", "--config", str(TINY), "--policy", _write(tmp_path / "p.yaml", text)], capsys, "policy",
             allowed=(2,))


# -- budgets ---------------------------------------------------------------------------------------------
budget_text = st.one_of(
    st.text(max_size=16), st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
        ["uniform_w8a8", "nope", "../../etc/passwd", "/etc/hostname", "uniform_w4a4"])).map(lambda t: f"{t[0]}x:{t[1]}"))


@fuzz(80)
@given(bitops=budget_text, latency=st.one_of(st.none(), budget_text))
def test_malformed_budgets(bitops, latency, tmp_path_factory, capsys) -> None:
    out = tmp_path_factory.mktemp("budget") / "search"
    argv = ["search", "--config", str(TINY), "--supernet", str(out.parent / "no_run"), "--out", str(out),
            "--bitops-budget", bitops]
    if latency is not None:
        argv += ["--latency-budget", latency]
    contract(argv, capsys, "budget", allowed=(2,))  # refused: the budget, or then the missing supernet
    assert not out.exists()


# -- latency tables --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lut(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("lut") / "lut.yaml"
    assert main(["latency-table", "--config", str(TINY), "--out", str(path), "--repeats", "1", "--warmup", "1"]) == 0
    return yaml.safe_load(path.read_text())


@fuzz(60)
@given(entry=junk, overhead=junk, resolution=junk, which=st.integers(0, 3))
def test_malformed_latency_tables(lut, entry, overhead, resolution, which, tmp_path_factory, capsys) -> None:
    doc = copy.deepcopy(lut)
    key = sorted(doc["entries"])[which]
    doc["entries"][key] = entry
    if which % 2:
        doc["overhead_ms"] = overhead
    if which == 3:
        doc["resolution"] = resolution
    path = _write(tmp_path_factory.mktemp("lut") / "t.yaml", doc)
    contract(["cost", "--config", str(TINY), "--policy", str(W8), "--lut", path, "--force-lut"], capsys, "latency table")


def test_latency_table_values_are_checked(lut, tmp_path, capsys) -> None:
    key = sorted(lut["entries"])[0]
    for value, message in ((-1.0, "positive number"), (float("nan"), "positive number"), ("1e400", "positive"),
                           (0.0, "positive number")):
        doc = copy.deepcopy(lut)
        doc["entries"][key] = value
        contract(["cost", "--config", str(TINY), "--policy", str(W8), "--lut", _write(tmp_path / "t.yaml", doc),
                  "--force-lut"], capsys, "latency table", allowed=(2,))
    doc = copy.deepcopy(lut)
    doc["overhead_ms"] = -1e6
    contract(["cost", "--config", str(TINY), "--policy", str(W8), "--lut", _write(tmp_path / "t.yaml", doc),
              "--force-lut"], capsys, "latency table", allowed=(2,))
    contract(["cost", "--config", str(TINY), "--policy", str(W8), "--lut", str(tmp_path)], capsys, "latency table",
             allowed=(2,))


# -- checkpoints -----------------------------------------------------------------------------------------
def _checkpoints(run: Path, tmp: Path) -> list[Path]:
    good = (run / "checkpoint.pt").read_bytes()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    cases = {"empty": b"", "text": b"not a checkpoint", "half": good[: len(good) // 2], "tail": good[-500:]}
    out = []
    for name, data in cases.items():
        (tmp / f"{name}.pt").write_bytes(data)
        out.append(tmp / f"{name}.pt")
    for name, edit in {"format": lambda s: s.update(format="x"), "unfinished": lambda s: s.update(finished=False),
                       "space": lambda s: s["space"].update(num_classes=3), "no model": lambda s: s.pop("model"),
                       "shape": lambda s: s["model"].update({k: torch.zeros(1) for k in list(s["model"])[:1]}),
                       "foreign": lambda s: s.update(model={"a": torch.zeros(2)})}.items():
        broken = copy.deepcopy(state)
        edit(broken)
        torch.save(broken, tmp / f"{name}.pt")
        out.append(tmp / f"{name}.pt")
    return out


def test_malformed_checkpoints(supernet_run, tmp_path, capsys) -> None:
    for path in _checkpoints(supernet_run, tmp_path):
        contract(["eval", "--config", str(TINY), "--supernet", str(path), "--policy", str(W8)], capsys, "checkpoint",
                 allowed=(2,))
        out = tmp_path / f"export_{path.stem}.onnx"
        contract(["export", "--config", str(TINY), "--checkpoint", str(path), "--policy", str(W8), "--format", "ort",
                  "--out", str(out)], capsys, "checkpoint", allowed=(2,))
        assert not out.exists()


# -- output paths ----------------------------------------------------------------------------------------
def _out_cases(tmp: Path) -> dict[str, str]:
    (tmp / "file").write_text("x")
    (tmp / "folder").mkdir()
    cases = {"empty": "", "under a file": str(tmp / "file" / "out"), "existing folder": str(tmp / "folder"),
             "existing file": str(tmp / "file"), "blank": "   "}
    if os.geteuid() != 0:  # root writes anywhere: read-only folders cannot refuse it
        (tmp / "ro").mkdir()
        os.chmod(tmp / "ro", 0o500)
        cases["read-only folder"] = str(tmp / "ro" / "out")
    return cases


def test_bad_output_paths(supernet_run, tmp_path, capsys) -> None:
    cases = _out_cases(tmp_path)
    for name, out in cases.items():
        before = sorted(p.name for p in tmp_path.rglob("*"))
        file_outputs = [
            ["sample", "--config", str(TINY), "--out", out],
            ["export", "--config", str(TINY), "--checkpoint", str(supernet_run), "--policy", str(W8), "--format", "ort",
             "--out", out],
            ["latency-table", "--config", str(TINY), "--out", out, "--repeats", "1"],
        ]
        folder_outputs = [
            ["search", "--config", str(TINY), "--supernet", str(supernet_run), "--out", out, "--quiet"],
            ["compare", "--config", str(TINY), "--out", out, "--quiet"],
            ["train", "--config", str(TINY), "--out", out, "--quiet"],
            ["finetune", "--config", str(TINY), "--supernet", str(supernet_run), "--policy", str(W8), "--out", out],
            ["run", "--config", str(TINY), "--out", out, "--quiet"],
            ["sensitivity", "--config", str(TINY), "--supernet", str(supernet_run), "--out", out],
        ]
        for argv in file_outputs + folder_outputs:
            folder_ok = name == "existing folder" and argv in folder_outputs
            file_ok = name == "existing file" and argv in file_outputs
            if folder_ok or file_ok:
                continue  # a valid destination: not a refusal case
            contract(argv, capsys, "output path", allowed=(2,))
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, name  # nothing left behind


# -- option values ---------------------------------------------------------------------------------------
OPTIONS = [("sample", "--seed"), ("latency-check", "--samples"), ("latency-check", "--seed"),
           ("latency-check", "--repeats"), ("latency-table", "--threads"), ("latency-table", "--repeats"),
           ("latency-table", "--warmup"), ("compare", "--seeds"), ("search", "--seed"), ("cost", "--height"),
           ("cost", "--width"), ("export", "--height"), ("sensitivity", "--scenes")]


def _not_an_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


@fuzz(120)
@given(option=st.sampled_from(OPTIONS), value=st.one_of(
    st.integers(-10**20, 0).map(str), st.integers(2**33, 2**70).map(str), st.text(max_size=6).filter(_not_an_integer),
    st.floats(allow_nan=True).map(str), st.sampled_from(["-1", "0", "1e3", "nan", "", "0x10"])))
@example(option=("cost", "--height"), value="0")  # found at QNAS_FUZZ_SCALE=10: 0 was taken as "the default"
def test_bad_option_values(option, value, tmp_path_factory, capsys) -> None:
    command, flag = option
    assume(not (flag == "--seed" and value == "0"))  # the one valid value among these
    out = tmp_path_factory.mktemp("opt")
    required = {"sample": [], "latency-check": ["--lut", str(out / "none.yaml")], "latency-table": ["--out", str(out / "t.yaml")],
                "compare": ["--out", str(out / "c"), "--no-baselines"], "search": ["--supernet", str(out / "x"), "--out", str(out / "s")],
                "cost": ["--policy", str(W8)], "export": ["--checkpoint", str(out / "x"), "--policy", str(W8),
                                                          "--format", "ort", "--out", str(out / "m.onnx")],
                "sensitivity": ["--supernet", str(out / "x"), "--out", str(out / "v")]}[command]
    contract([command, "--config", str(TINY), *required, flag, value], capsys, "option", allowed=(2,))
    assert not list(out.iterdir())  # refused before anything was written


# -- resume state and concurrency ------------------------------------------------------------------------
def test_search_resume_state(supernet_run, tmp_path, capsys) -> None:
    out = tmp_path / "s"
    base = ["search", "--config", str(TINY), "--supernet", str(supernet_run), "--out", str(out), "--quiet"]
    assert contract(base + ["--bitops-budget", "0.6x:uniform_w8a8"], capsys, "resume state") == 0
    capsys.readouterr()
    assert main(base + ["--bitops-budget", "0.5x:uniform_w8a8", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "budgets" in err and "this one has" in err and len(err.strip().splitlines()) == 1
    for text in ('{"settings": ', "[]", ""):
        (out / "state.json").write_text(text)
        contract(base + ["--bitops-budget", "0.6x:uniform_w8a8", "--resume"], capsys, "resume state", allowed=(2,))
    (out / "state.json").unlink()
    log = out / "evaluations.jsonl"
    lines = log.read_text().splitlines()
    for text in (lines[0] + "\nnot json\n" + lines[1] + "\n", '{"generation": 0}\n' + lines[0] + "\n"):
        log.write_text(text)
        contract(base + ["--bitops-budget", "0.6x:uniform_w8a8", "--resume"], capsys, "resume state", allowed=(2,))
    log.write_text("\n".join(lines) + "\n" + lines[0][: len(lines[0]) // 2])  # a torn last line: repaired
    assert contract(base + ["--bitops-budget", "0.6x:uniform_w8a8", "--resume"], capsys, "resume state") == 0


def test_a_second_writer_is_refused_naming_the_holder(supernet_run, tmp_path, capsys) -> None:
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from qnas.pipeline.lock import FolderLock\n"
                               f"with FolderLock({str(out)!r}, what='qnas search'):\n    print('held', flush=True); "
                               "time.sleep(60)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for argv in (["search", "--config", str(TINY), "--supernet", str(supernet_run), "--out", str(out), "--quiet"],
                     ["compare", "--config", str(TINY), "--out", str(out), "--quiet"],
                     ["train", "--config", str(TINY), "--out", str(out), "--quiet"],
                     ["run", "--config", str(TINY), "--out", str(out), "--quiet", "--resume"]):
            capsys.readouterr()
            CASES["concurrency"] = CASES.get("concurrency", 0) + 1
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"pid {holder.pid}" in err and "qnas search" in err and len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file is stale and simply taken over
    assert (out / ".qnas.lock").exists()
    CASES["concurrency"] += 1
    assert main(["search", "--config", str(TINY), "--supernet", str(supernet_run), "--out", str(out), "--quiet",
                 "--bitops-budget", "0.6x:uniform_w8a8"]) == 0
    assert not (out / ".qnas.lock").exists()


def test_policy_names_never_escape_the_comparison_folder(supernet_run, tmp_path, capsys) -> None:
    from qnas.pipeline.searching import safe_name

    hostile = ["../../escaped", "/abs/path", "a/b\\c", "", ".", "..", "x" * 300, "name\x00null", "~root", "-rf"]
    for name in hostile:
        CASES["output path"] = CASES.get("output path", 0) + 1
        child = (tmp_path / "runs" / safe_name(name)).resolve()
        assert child.parent == (tmp_path / "runs").resolve() and len(child.name) <= 100
    doc = copy.deepcopy(BASE_POLICY)
    doc["name"] = "../../escaped"
    policy = _write(tmp_path / "p.yaml", doc)
    out = tmp_path / "cmp"
    assert contract(["compare", "--config", str(TINY), "--supernet", str(supernet_run), "--out", str(out), "--quiet",
                     "--no-baselines", "--seeds", "1", policy], capsys, "output path") == 0
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert [p.name for p in (out / "runs").iterdir()] == ["_.._escaped"]


def test_training_that_diverges_stops_with_one_line(tmp_path, capsys) -> None:
    doc = copy.deepcopy(BASE_CONFIG)
    doc["train"]["warmup_lr"] = 1e30
    contract(["train", "--config", _write(tmp_path / "c.yaml", doc), "--out", str(tmp_path / "t"), "--quiet"], capsys,
             "config", allowed=(2,))


def test_resuming_a_run_with_another_config_names_the_difference(tmp_path, capsys) -> None:
    doc = copy.deepcopy(BASE_CONFIG)
    doc["compare"]["seeds"] = 3
    from qnas.config import load_config

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(load_config(_write(tmp_path / "c.yaml", doc)).to_yaml())
    capsys.readouterr()
    CASES["resume state"] = CASES.get("resume state", 0) + 1
    assert main(["run", "--config", str(TINY), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "compare.seeds: 3 there, 2 here" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_zzz_report_the_cases(capsys) -> None:
    with capsys.disabled():
        print("\nfuzz cases per category: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())))
