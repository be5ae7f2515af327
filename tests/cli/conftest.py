"""One tiny supernet run shared by the CLI tests that only read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnas.cli.main import main

TINY = str(Path(__file__).resolve().parent / "tiny.yaml")


@pytest.fixture(scope="session")
def supernet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "supernet"
    assert main(["train", "--config", TINY, "--out", str(out), "--quiet"]) == 0
    return out
