"""Quantization: grids and numeric limits (``grids``, torch-free), STE rounding, PACT activation and
per-channel weight fake-quantizers with an elastic bit width (torch).

The torch parts are imported on first use, so torch-free layers can import ``qnas.quant.grids``.
"""

from __future__ import annotations

import importlib
from typing import Any

from qnas.quant.grids import (
    BIAS_CODE_LIMIT, FLOAT32_EXACT_LIMIT, OUTPUT_QUANT_BITS, accumulator_bound, act_levels, float32_exact, weight_levels,
)

_TORCH_NAMES = {
    "act_codes": "functional", "max_clip": "functional", "pact_quantize": "functional", "round_ste": "functional",
    "weight_codes": "functional", "weight_quantize": "functional", "weight_scale": "functional",
    "PACTActivationQuant": "modules", "PerChannelWeightQuant": "modules", "limit_bits": "modules", "apply_target": "modules",
}

__all__ = [
    "BIAS_CODE_LIMIT", "FLOAT32_EXACT_LIMIT", "OUTPUT_QUANT_BITS", "PACTActivationQuant", "PerChannelWeightQuant",
    "accumulator_bound", "act_codes", "act_levels", "float32_exact", "max_clip", "pact_quantize", "round_ste",
    "weight_codes", "weight_levels", "weight_quantize", "weight_scale", "limit_bits", "apply_target",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(f"qnas.quant.{_TORCH_NAMES[name]}"), name)
    raise AttributeError(f"module 'qnas.quant' has no attribute {name!r}")
