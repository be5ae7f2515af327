"""``qnas data-check``: split sizes and class frequencies of every registered dataset; each defect of a folder
dataset one line naming its file, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from qnas.cli.data_commands import MAX_SHOWN
from qnas.cli.main import main
from qnas.config import to_dict
from qnas.data import DATASETS, dataset_kind
from qnas.pipeline import check_data
from tests.data.fakes import FOLDER_CLASSES, write_folder
from tests.data.test_registry import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, data: dict, classes: int) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"space": {"num_classes": classes}, "data": data}, sort_keys=False))
    return str(path)


def _folder_config(tmp_path: Path, **data) -> tuple[Path, str]:
    root = write_folder(tmp_path / "folder", train=6, val=2, height=16, width=24)
    return root, _config(tmp_path, {"dataset": "folder", "root": str(root), "class_names": list(FOLDER_CLASSES),
                                    **data}, len(FOLDER_CLASSES))


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_registered_dataset_is_checked(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = EXAMPLES[name](tmp_path / "data")
    classes = dataset_kind(name).class_names(data)
    config = _config(tmp_path, to_dict(data), len(classes))
    assert main(["data-check", "--config", config, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "split sizes: train " in out and f"{name}: no defects" in out
    assert f"{name}: pixel share per class" in out and classes[-1] in out and "(ignored)" in out


def test_a_clean_folder_prints_sizes_and_frequencies_and_writes_nothing(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    root, config = _folder_config(tmp_path, search_fraction=0.5)
    before = _files(tmp_path)
    assert main(["data-check", "--config", config, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "split sizes: train 3, val 2, search 3" in out and "folder: no defects" in out
    for name in FOLDER_CLASSES:
        assert name in out
    assert _files(tmp_path) == before
    from qnas.config import load_config

    check = check_data(load_config(config))
    for split in check.splits:  # the shares are the masks' pixel counts (the ignored first row of each mask)
        shares = split.shares()
        assert sum(shares) == pytest.approx(1.0) and shares[-1] == pytest.approx(1 / 16)
        assert f"{100 * shares[0]:.2f}%" in out


def _unlink(path: Path) -> None:
    path.unlink()


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x89PNG truncated")


def _wider(path: Path) -> None:
    Image.fromarray(np.zeros((16, 25), np.uint8)).save(path)


def _outside(path: Path) -> None:
    ids = np.asarray(Image.open(path)).copy()
    ids[3, 3] = 9
    Image.fromarray(ids).save(path)


def _rgb(path: Path) -> None:
    Image.open(path).convert("RGB").save(path)


DEFECTS: dict[str, tuple[str, Callable[[Path], None], str]] = {  # file, how it is broken, what the line says
    "image without mask": ("masks/train/train_001.png", _unlink, "images/train/train_001.png: no mask"),
    "mask without image": ("images/val/val_001.png", _unlink, "masks/val/val_001.png: no image"),
    "unreadable image": ("images/train/train_002.png", _garbage, "images/train/train_002.png: cannot read the image"),
    "unreadable mask": ("masks/val/val_000.png", _garbage, "masks/val/val_000.png: cannot read the mask"),
    "wrong-size mask": ("masks/train/train_004.png", _wider, "masks/train/train_004.png: the mask is 25x16 pixels"),
    "id outside the classes": ("masks/train/train_005.png", _outside,
                               "masks/train/train_005.png: mask ids 9 are neither a class (0 to 2) nor the ignore index 255"),
    "RGB mask": ("masks/train/train_000.png", _rgb, "masks/train/train_000.png: the mask has mode RGB"),
}


@pytest.mark.parametrize("case", sorted(DEFECTS))
def test_a_defect_is_one_line_naming_the_file_and_exit_2(case: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    root, config = _folder_config(tmp_path)
    file, damage, message = DEFECTS[case]
    damage(root / file)
    before = _files(tmp_path)
    assert main(["data-check", "--config", config, "--quiet"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if message in line]
    assert len(lines) == 1 and lines[0].startswith(str(root)), captured.out
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.strip() == ("qnas data-check: error: 1 defect(s) in data.dataset 'folder' "
                                    "(listed above, one per line)")
    assert _files(tmp_path) == before


def test_every_defect_at_once_in_a_real_process(tmp_path: Path) -> None:
    root, config = _folder_config(tmp_path)
    for file, damage, _ in DEFECTS.values():
        damage(root / file)
    proc = subprocess.run([sys.executable, "-m", "qnas.cli.main", "data-check", "--config", config, "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    for _, _, message in DEFECTS.values():
        assert sum(message in line for line in proc.stdout.splitlines()) == 1, message
    assert proc.stderr.strip().splitlines() == [
        f"qnas data-check: error: {len(DEFECTS)} defect(s) in data.dataset 'folder' (listed above, one per line)"]


def test_many_defects_are_capped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, config = _folder_config(tmp_path)
    for k in range(MAX_SHOWN + 5):
        (root / "masks" / "val" / f"stray_{k:03d}.png").write_bytes(b"")
    assert main(["data-check", "--config", config, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert sum(": no image; expected" in line for line in captured.out.splitlines()) == MAX_SHOWN
    assert "... and 5 more defects" in captured.out
    assert f"{MAX_SHOWN + 5} defect(s)" in captured.err


def test_a_cityscapes_tree_error_is_a_defect(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = EXAMPLES["cityscapes"](tmp_path / "data")
    label = tmp_path / "data" / "gtFine" / "val" / "lindau" / "lindau_0_0_gtFine_labelIds.png"
    label.unlink()
    assert main(["data-check", "--config", _config(tmp_path, to_dict(data), 19), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert sum(f"label file {label} is missing" in line for line in out.splitlines()) == 1
    assert "train: 1" in out  # the train split is still counted


@pytest.mark.parametrize("key, message", [
    ("root", "data.root: data.dataset 'folder' needs the folder holding images/ and masks/"),
    ("class_names", "data.class_names: data.dataset 'folder' needs the class names"),
])
def test_a_missing_key_is_one_line(key: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = {"dataset": "folder", "root": str(tmp_path), "class_names": list(FOLDER_CLASSES)}
    data.pop(key)
    assert main(["data-check", "--config", _config(tmp_path, data, 3)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
