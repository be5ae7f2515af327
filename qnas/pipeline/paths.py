"""Output paths checked before anything is written: one line naming what is wrong, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

from qnas.errors import QnasError

__all__ = ["output_file", "output_folder"]


def _writable_ancestor(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder this process can write in."""
    for parent in path.parents:
        if parent.exists() or parent == Path(parent.anchor or "."):
            if not parent.is_dir():
                raise QnasError(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise QnasError(f"{option} {path}: cannot write in {parent} (permission denied)")
            return


def output_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """A file to write: not empty, not a folder, under a folder that exists or can be made and is writable."""
    if str(path).strip() == "":
        raise QnasError(f"{option} is empty; give a file name")
    path = Path(path)
    if path.is_dir():
        raise QnasError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise QnasError(f"{option} {path}: cannot overwrite it (permission denied)")
    _writable_ancestor(path, option)
    return path


def output_folder(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """A folder to write into: not empty, not a file, and creatable or writable."""
    if str(path).strip() == "":
        raise QnasError(f"{option} is empty; give a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise QnasError(f"{option} {path} exists and is not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise QnasError(f"{option} {path}: cannot write in it (permission denied)")
        return path
    _writable_ancestor(path, option)
    return path
