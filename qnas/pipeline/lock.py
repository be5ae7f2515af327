"""An exclusive lock on a run folder, so that two commands never write the same folder at once.

The lock is ``FOLDER/.qnas.lock``, held with ``flock`` for as long as the command runs and holding
the holder's pid, host and command. The kernel releases an ``flock`` when its process dies, so a
lock file left by a killed command is stale and simply taken over. A second writer is refused
with one line naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from qnas.errors import QnasError

__all__ = ["FolderLock", "LOCK_NAME", "clean_temporary_files"]

LOCK_NAME = ".qnas.lock"
_HELD: dict[Path, int] = {}  # folders this process holds, with how many times (nested stages of one command)


class FolderLock:
    """``with FolderLock(folder):`` holds ``folder`` exclusively (creating it), re-entrant within a process;
    ``FolderLock.file(path)`` holds one file of a folder. Only the main process of a distributed run locks."""

    def __init__(self, folder: str | os.PathLike[str], name: str = LOCK_NAME, what: str = "") -> None:
        self.folder = Path(folder)
        self.name = name
        self.what = what or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
        self._fd: int | None = None
        self._active = False

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> FolderLock:
        path = Path(path)
        return cls(path.parent, f".{path.name}.lock")

    def __enter__(self) -> FolderLock:
        from qnas.pipeline.context import is_main_process

        if not is_main_process():
            return self
        key = (self.folder / self.name).resolve()
        self._active = True
        if key in _HELD:
            _HELD[key] += 1
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / self.name, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self._active = False
            raise QnasError(f"cannot write to {self.folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            self._active = False
            what = self.folder if self.name == LOCK_NAME else self.folder / self.name[1:-len(".lock")]
            raise QnasError(f"{what} is being written by {holder}; wait for it to finish, or write elsewhere") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.what,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        _HELD[key] = 1
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._active:
            return
        self._active = False
        key = (self.folder / self.name).resolve()
        _HELD[key] -= 1
        if _HELD[key]:
            return
        del _HELD[key]
        if self._fd is not None:
            (self.folder / self.name).unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(data: bytes) -> str:
    try:
        doc = json.loads(data.decode() or "{}")
        return f"pid {doc['pid']} on {doc['host']} ({doc['command']}, since {doc['since']})"
    except (ValueError, KeyError, UnicodeDecodeError):
        return "another qnas process"


def clean_temporary_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of atomic writes (``.NAME.*.tmp``) that a kill left in ``folder`` and its
    subfolders, except those that are run folders of their own (they hold a lock file and clean themselves);
    only the holder of the folder's lock calls this. Returns what was removed."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if path.is_file() and path.name.startswith(".") and ".tmp" in path.name:
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.is_dir() and not (path / LOCK_NAME).exists():
            removed += clean_temporary_files(path)
    return removed
