"""Export: one emitter walks the network plan, one writer per registered profile; latency backends.

``to_brevitas``, ``load_brevitas`` and ``brevitas_qonnx`` (``qnas.export.brevitas``) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"to_brevitas": "brevitas", "load_brevitas": "brevitas", "save_brevitas": "brevitas",
         "brevitas_qonnx": "brevitas"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"qnas.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'qnas.export' has no attribute {name!r}")
