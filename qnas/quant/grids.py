"""The numeric facts that the model and every exporter share (torch-free: plain Python).

An integer engine computes a quantized conv as ``sum(x_code * w_code) + bias_code`` in an int32
accumulator. The model computes it in float32, which holds every integer below 2^24 exactly, so
the sum is exact while its largest possible magnitude (``accumulator_bound``) stays below
``FLOAT32_EXACT_LIMIT``; beyond it the model sums in float64 and rounds once (as an int32
accumulator converted to float does), and the exporters list the conv as one that a float
executor may round. The model bounds a conv by its bit widths (``accumulator_bound``); an exporter,
which knows the trained codes, by the largest codes it writes (``sum_bound`` of them), which can
never exceed the model's bound: every conv an exporter lists, the model sums exactly too.
"""

from __future__ import annotations

__all__ = ["FLOAT32_EXACT_LIMIT", "BIAS_CODE_LIMIT", "OUTPUT_QUANT_BITS", "act_levels", "weight_levels",
           "sum_bound", "accumulator_bound", "float32_exact"]

FLOAT32_EXACT_LIMIT = 2**24  # integers up to this size (and every partial sum below it) are exact in float32
BIAS_CODE_LIMIT = 2**22  # |int32 bias code| bound that keeps accumulator + bias exact in float32
OUTPUT_QUANT_BITS = 8  # the output quantizer of a tensor an integer engine keeps as a number (residuals, branches)


def act_levels(bits: int, signed: bool) -> int:
    """Largest integer code of an activation grid.

    Unsigned grids use ``[0, 2**bits - 1]``; signed grids are symmetric narrow range,
    ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``, so that zero is exact and the grid is symmetric.
    """
    minimum = 2 if signed else 1
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < minimum:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"bits must be an integer >= {minimum} for {kind} quantization, got {bits!r}")
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


def weight_levels(bits: int) -> int:
    """Largest code of a symmetric narrow-range weight grid."""
    return act_levels(bits, signed=True)


def sum_bound(fan_in: int, act_max: int, weight_max: int, bias_max: int = 0) -> int:
    """The largest |partial sum| of ``fan_in`` products of codes up to ``act_max`` and ``weight_max``
    in magnitude, plus a bias code up to ``bias_max``."""
    return fan_in * act_max * weight_max + bias_max


def accumulator_bound(fan_in: int, act_bits: int, act_signed: bool, weight_bits: int, with_bias: bool) -> int:
    """The largest |partial sum| a conv's accumulator can reach at these bit widths (the model's bound):
    ``fan_in`` products of the largest codes, plus the int32 bias limit when the bias is in the sum."""
    return sum_bound(fan_in, act_levels(act_bits, act_signed), weight_levels(weight_bits),
                     BIAS_CODE_LIMIT if with_bias else 0)


def float32_exact(bound: int) -> bool:
    """Whether float32 sums every partial sum up to ``bound`` exactly."""
    return bound < FLOAT32_EXACT_LIMIT
