"""Deployment targets: which runtime a network is for, and the bit widths that runtime holds exactly
(torch-free: plain Python).

A genome's bit widths are what the search chooses; a target says what its file can compute. Where a
target cannot hold a grid exactly, the grid runs narrower on the same clip: an ``8``-bit choice is
evaluated, fine-tuned, compared and exported at ``max_weight_bits`` / ``max_unsigned_bits``. Since
every stage of the pipeline evaluates those numerics, the search optimizes the network the target
runs, and the file that is deployed computes what was measured.

- ``qonnx``: FPGA flows take every grid as it is (no limit). The default.
- ``ort`` and ``openvino``: x86 CPUs without VNNI (AVX2 only) multiply uint8 activations by int8
  weights with ``vpmaddubsw``, which sums products in pairs into int16 and saturates at 32767; two
  products of an 8-bit code (up to 255) and a 7-bit weight (up to 63) stay below it, so weights run
  at most 7 bits (onnxruntime's ``reduce_range``) and every conv keeps int8 weights (the fast kernel)
  while computing exactly on every CPU.
- ``trt``: int8 engines have no uint8 tensors; unsigned activations run at most 7 bits (codes 0..127).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target", "TARGETS", "DEFAULT_TARGET", "register_target", "target_names", "get_target"]

DEFAULT_TARGET = "qonnx"


@dataclass(frozen=True)
class Target:
    """A deployment target: its export profile, the widest grids it computes exactly, and why."""

    name: str
    profile: str  # the export profile whose file is deployed
    max_weight_bits: int | None  # weight grids wider than this run at this width (None: no limit)
    max_unsigned_bits: int | None  # unsigned activation grids likewise; signed ones are never limited
    backend: str | None  # the latency backend that measures the target on this machine, if one does
    why: str  # one line for --help and reports
    file_scored: bool = True  # compare scores the deployed file in its runtime (False: too slow to run a split)

    def weight_bits(self, bits: int) -> int:
        """The width a weight grid of ``bits`` bits runs at on this target."""
        return bits if self.max_weight_bits is None else min(bits, self.max_weight_bits)

    def act_bits(self, bits: int, signed: bool) -> int:
        """The width an activation grid of ``bits`` bits runs at on this target."""
        return bits if signed or self.max_unsigned_bits is None else min(bits, self.max_unsigned_bits)

    def describe(self) -> str:
        """What the target changes, e.g. 'weights at most 7 bits'; 'every grid as searched' when nothing."""
        limits = [f"{what} at most {bits} bits" for what, bits in
                  (("weights", self.max_weight_bits), ("unsigned activations", self.max_unsigned_bits))
                  if bits is not None]
        return ", ".join(limits) or "every grid as searched"


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in TARGETS:
        raise ValueError(f"target {target.name!r} is already registered")
    for bits in (target.max_weight_bits, target.max_unsigned_bits):
        if bits is not None and (not isinstance(bits, int) or bits < 2):
            raise ValueError(f"target {target.name!r}: a bit limit must be an integer >= 2, got {bits!r}")
    TARGETS[target.name] = target
    return target


register_target(Target("qonnx", "qonnx", None, None, None,
                       "QONNX for FPGA flows (FINN, hls4ml): every grid at its searched width", file_scored=False))
register_target(Target("ort", "ort", 7, None, "ort-cpu",
                       "onnxruntime integer kernels: weights at most 7 bits, so u8 x s8 pair sums stay exact in "
                       "int16 on CPUs without VNNI and every conv keeps int8 weights"))
register_target(Target("trt", "trt", None, 7, None,
                       "TensorRT int8: unsigned activations at most 7 bits (int8 has no 0..255)"))
register_target(Target("openvino", "openvino", 7, None, "ov-cpu",
                       "OpenVINO's CPU plugin: weights at most 7 bits, so its u8 x s8 int16 pair sums stay exact "
                       "on CPUs without VNNI"))


def target_names() -> list[str]:
    return list(TARGETS)


def get_target(name: str) -> Target:
    from qnas.errors import QnasError

    if name not in TARGETS:
        raise QnasError(f"unknown target {name!r}; allowed: {', '.join(TARGETS)}")
    return TARGETS[name]
