"""The registered deployment targets: each names a registered export profile and backend, and its bit limits
are what its runtime computes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from qnas.errors import QnasError
from qnas.export.graph import Grid
from qnas.export.latency import backend_names
from qnas.export.profiles import profile_names
from qnas.export.qlinear import unsigned_weights
from qnas.quant.grids import act_levels, weight_levels
from qnas.quant.targets import DEFAULT_TARGET, TARGETS, Target, get_target, register_target, target_names


def test_the_issue_s_targets_are_registered_and_the_default_changes_nothing() -> None:
    assert target_names()[:4] == ["qonnx", "ort", "trt", "openvino"]
    default = get_target(DEFAULT_TARGET)
    assert default.max_weight_bits is None and default.max_unsigned_bits is None
    assert default.describe() == "every grid as searched"


@pytest.mark.parametrize("name", target_names())
def test_every_target_names_what_exists(name: str) -> None:
    target = TARGETS[name]
    assert target.profile in profile_names()
    assert target.backend is None or target.backend in backend_names()
    assert target.why and target.name == name


@pytest.mark.parametrize("name", target_names())
def test_limits_apply_to_wider_grids_only(name: str) -> None:
    target = TARGETS[name]
    for bits in (4, 6, 8):
        assert target.weight_bits(bits) == min(bits, target.max_weight_bits or bits)
        assert target.act_bits(bits, signed=True) == bits
        assert target.act_bits(bits, signed=False) == min(bits, target.max_unsigned_bits or bits)


@pytest.mark.parametrize("name", ["ort", "openvino"])
def test_cpu_targets_keep_int16_pair_sums_exact_so_every_conv_keeps_int8_weights(name: str) -> None:
    """The reason for their limit, in numbers: the widest raw uint8 input code (255) times the widest weight
    code, twice, fits in int16, so the ort writer never needs its slower uint8-weight form."""
    target = get_target(name)
    widest_weight = weight_levels(target.weight_bits(8))
    for grid in (Grid.unsigned(0.1, 8), Grid.symmetric(0.1, 8)):
        assert not unsigned_weights(grid, np.array([widest_weight, -widest_weight]))
    assert unsigned_weights(Grid.unsigned(0.1, 8), np.array([weight_levels(8)]))  # what the limit avoids


def test_trt_target_fits_unsigned_codes_in_int8() -> None:
    assert act_levels(get_target("trt").act_bits(8, signed=False), signed=False) <= 127


def test_unknown_target_is_refused_with_the_allowed_list() -> None:
    with pytest.raises(QnasError, match="unknown target 'tensorrt'; allowed: qonnx, ort, trt, openvino"):
        get_target("tensorrt")


def test_registration_refuses_duplicates_and_bad_limits() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_target(Target("ort", "ort", 7, None, None, "again"))
    with pytest.raises(ValueError, match="integer >= 2"):
        register_target(Target("tiny", "ort", 1, None, None, "one bit"))
    assert "tiny" not in TARGETS
