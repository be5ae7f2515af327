"""Every registered export profile: exported, executed by its runtime, and checked against the model it computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qnas.export.openvino import vnni
from qnas.export.profiles import PROFILES, get_profile, onnx_bytes, profile_names
from qnas.space import SearchSpace
from qnas.train import cut_subnet
from tests.export.conftest import brevitas_codes, check_codes


def test_the_builtin_profiles_are_registered_in_order() -> None:
    assert profile_names()[:6] == ["qonnx", "ort", "trt", "openvino", "onnx-fp32", "brevitas"]
    assert all(PROFILES[name].help for name in profile_names())
    onnx_files = [name for name in profile_names() if PROFILES[name].serialize is onnx_bytes]
    assert all(PROFILES[name].suffix.endswith(".onnx") for name in onnx_files) and "brevitas" not in onnx_files
    assert PROFILES["brevitas"].suffix == "_brevitas.pt"


@pytest.mark.parametrize("name", profile_names())
def test_profile_runs_and_computes_its_reference(name: str, trained, small_space: SearchSpace) -> None:
    supernet, images, val = trained
    profile = get_profile(name)
    genomes = [small_space.sample(np.random.default_rng(3))]
    if not name.startswith("qonnx"):  # qonnx's Python executor is slow; test_qonnx_export.py runs 6 genomes
        genomes.append(small_space.smallest())
    for genome in genomes:
        subnet = cut_subnet(supernet, genome, images)
        model = profile.export(subnet, 48, 48)
        reference = profile.reference(subnet).eval()
        for i in range(2):
            x = val[i][0][None]
            with torch.no_grad():
                want = reference(x).numpy()
            got = profile.run(model, x.numpy())
            assert got.shape == want.shape and np.isfinite(got).all()
            if profile.exact:  # the file computes the reference bit for bit
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
            elif name == "brevitas":  # float sums of scaled values: the same codes but for rounding-boundary
                # flips, which this barely trained net's near-tied logits can amplify (14% of pixels for 2 flips)
                check_codes(brevitas_codes(subnet, model, x), got, want, atol=1e-4)
            elif name != "openvino" or vnni():  # rounding-boundary flips (ort, trt), float summation order (fp32)
                assert float(np.mean(got.argmax(1) == want.argmax(1))) >= 0.98
            # (openvino without VNNI saturates int16 pair sums: qnas.export.openvino; tests/export/test_openvino_export.py)
    assert get_profile(name).name == name


def test_unknown_profile_is_refused_with_the_allowed_list() -> None:
    from qnas.errors import QnasError

    with pytest.raises(QnasError, match="unknown export format 'tensorrt'; allowed: .*'trt'"):
        get_profile("tensorrt")
