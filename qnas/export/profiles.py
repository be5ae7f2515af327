"""Registered export profiles: how a frozen subnet becomes an ONNX file for one kind of target.

A profile is a function ``export(model, height, width) -> onnx.ModelProto`` registered with
``@register_profile(name, ...)``. ``reference(model)`` is the model the file computes (the model
itself, or its widened copy for int8-only engines) and ``exact`` says whether the file equals it
bit for bit when its runtime executes it (``runner(model)``: a function of the input, loaded once;
``run(model, x)``: one call); the CLI's ``--format`` choices and the parametrized tests come from
this registry. ``serialize(file) -> bytes`` is what ``qnas export`` writes (an ONNX model's bytes, unless the
profile's export returns something else, as ``brevitas``'s model does).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ExportProfile", "Runner", "onnx_bytes", "onnxruntime_runner", "run_onnxruntime", "PROFILES", "register_profile", "get_profile", "profile_names"]

# modules whose import registers the built-in profiles (imported on first lookup)
BUILTIN = ("qnas.export.qonnx", "qnas.export.ort", "qnas.export.trt", "qnas.export.openvino", "qnas.export.fp32",
           "qnas.export.brevitas",
           "qnas.export.fpga")  # qonnx-hls4ml


def _identity(model: Any) -> Any:
    return model


def onnx_bytes(model: Any) -> bytes:
    return model.SerializeToString()


Runner = Callable[[np.ndarray], np.ndarray]


def onnxruntime_runner(model: Any) -> Runner:
    """The file loaded once in onnxruntime's CPU provider: input -> first output."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def run_onnxruntime(model: Any, x: np.ndarray) -> np.ndarray:
    """The file's first output for input ``x``, executed by onnxruntime's CPU provider."""
    return onnxruntime_runner(model)(x)


@dataclass(frozen=True)
class ExportProfile:
    name: str
    export: Callable[..., Any]
    help: str
    suffix: str  # file name ending used by `qnas run` (e.g. "_int8.onnx")
    runtime: str  # what executes it for checks
    runner: Callable[[Any], Runner] = onnxruntime_runner
    reference: Callable[[Any], Any] = _identity
    exact: bool = True  # equals ``reference(model)`` bit for bit (False: float, or rounding-boundary flips)
    serialize: Callable[[Any], bytes] = onnx_bytes  # the bytes of the file ``qnas export`` writes

    def run(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The file's first output for input ``x`` in the profile's runtime."""
        return self.runner(model)(x)


PROFILES: dict[str, ExportProfile] = {}


def register_profile(name: str, *, help: str, suffix: str, runtime: str, runner: Callable | None = None,
                     reference: Callable | None = None, exact: bool = True,
                     serialize: Callable[[Any], bytes] = onnx_bytes) -> Callable:
    """Register ``export(model, height, width) -> ModelProto`` as profile ``name``; ``runner(model)`` loads a
    file in its runtime (default: onnxruntime's CPU provider)."""

    def decorate(export: Callable) -> Callable:
        if name in PROFILES:
            raise ValueError(f"export profile {name!r} is already registered")
        PROFILES[name] = ExportProfile(name, export, help, suffix, runtime, runner or onnxruntime_runner,
                                       reference or _identity, exact, serialize)
        return export

    return decorate


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def profile_names() -> list[str]:
    """Every registered profile: the built-in ones in ``BUILTIN`` order, then the others."""
    _load_builtin()
    rank = {module: i for i, module in enumerate(BUILTIN)}
    return sorted(PROFILES, key=lambda name: rank.get(PROFILES[name].export.__module__, len(rank)))


def get_profile(name: str) -> ExportProfile:
    from qnas.errors import QnasError

    _load_builtin()
    if name not in PROFILES:
        raise QnasError(f"unknown export format {name!r}; allowed: {list(PROFILES)}")
    return PROFILES[name]
