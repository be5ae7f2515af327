"""README's Python API runs as written (on the tiny test config, in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "cli" / "tiny.yaml"


def _python_api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_python_api_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_api_blocks()
    assert len(blocks) == 2 and "search(" in blocks[0] and "export(" in blocks[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    code = "\n".join(blocks).replace('"configs/digits.yaml"', repr(str(TINY)))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "best_int8.onnx").stat().st_size > 0
    assert (tmp_path / "runs" / "search" / "best.yaml").exists()
