"""``qnas run`` end to end on the real-dataset paths: a fake Cityscapes tree (label ids mapped to 19 train ids)
and a folder of images and palette masks, each with a tiny config (tiny_cityscapes.yaml, tiny_folder.yaml)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from qnas.cli.main import main
from qnas.export.profiles import PROFILES, profile_names
from tests.data.fakes import FOLDER_CLASSES, write_cityscapes, write_folder

HERE = Path(__file__).resolve().parent
PROFILE_SUFFIXES = tuple(PROFILES[name].suffix for name in profile_names())  # every registered profile


def _config(tmp_path: Path, name: str, root: Path) -> str:
    doc = yaml.safe_load((HERE / name).read_text())
    doc["data"]["root"] = str(root)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _cityscapes(tmp_path: Path) -> Path:
    # train: bochum (4 frames, training) and aachen (2, held out for search); val: lindau
    return write_cityscapes(tmp_path / "cityscapes", {"train": {"aachen": 2, "bochum": 4}, "val": {"lindau": 2}})


def _folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "folder", train=8, val=2, height=24, width=40)  # resized to 32x32


DATASETS: dict[str, tuple[str, Callable[[Path], Path], int]] = {
    "cityscapes": ("tiny_cityscapes.yaml", _cityscapes, 19),
    "folder": ("tiny_folder.yaml", _folder, len(FOLDER_CLASSES)),
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_run_on_files_writes_the_report_and_every_export(dataset: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    name, write, classes = DATASETS[dataset]
    config = _config(tmp_path, name, write(tmp_path))
    assert main(["data-check", "--config", config, "--quiet"]) == 0
    out = tmp_path / "run"
    assert main(["run", "--config", config, "--out", str(out), "--quiet"]) == 0
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert report.startswith(f"# qnas run: {dataset}\n")
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["data"]["dataset"] == dataset and recorded["space"]["num_classes"] == classes
    for path in ("supernet/checkpoint.pt", "lut.yaml", "search/best.yaml", "sensitivity/sensitivity.csv",
                 "compare/compare.csv"):
        assert (out / path).is_file(), path
    exported = sorted(p.name for p in (out / "export").iterdir())
    stem = next(n for n in exported if n.endswith("_brevitas.pt"))[:-len("_brevitas.pt")]
    assert exported == sorted(stem + suffix for suffix in PROFILE_SUFFIXES)  # one file per registered profile
    for name in exported:
        assert f"(export/{name})" in report
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"uniform_w8a8", "uniform_w4a4"} <= {r["method"] for r in rows}
    assert all(0.0 <= float(r["miou"]) <= 1.0 for r in rows)
    for row in rows:
        assert f"| {row['method']} | {row['precision']} | {row['miou']} |" in report
    log = (out / "supernet" / "train.log").read_text()
    if dataset == "cityscapes":  # the thesis-scale path: files read by a loader process, the standard augmentation
        assert "1 loader processes, augmented (AugmentConfig(scale=(0.5, 2.0)" in log
    else:
        assert "0 loader processes" in log and "augmented" not in log
