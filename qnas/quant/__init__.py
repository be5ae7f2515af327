"""Quantization: STE rounding, PACT activation and per-channel weight fake-quantizers, elastic bit width."""

from qnas.quant.functional import (
    act_codes,
    act_levels,
    max_clip,
    pact_quantize,
    round_ste,
    weight_codes,
    weight_quantize,
    weight_scale,
)
from qnas.quant.modules import PACTActivationQuant, PerChannelWeightQuant

__all__ = [
    "PACTActivationQuant", "PerChannelWeightQuant", "act_codes", "act_levels", "max_clip",
    "pact_quantize", "round_ste", "weight_codes", "weight_quantize", "weight_scale",
]
