"""The ``openvino`` profile and the ``ov-cpu`` backend: OpenVINO runs every conv in int8, and the file
computes what the model computes (no widening)."""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto

from qnas.export.openvino import (export_openvino_model, int8_coverage, run_openvino, unrounded_residual_sums, vnni,
                                  with_outputs)
from qnas.export.qdq import MixedQdqGraph
from qnas.train import cut_subnet
from tests.export.conftest import check_codes, codes_at_every_conv, export_genomes
from tests.export.test_trt_export import check_qdq_rules, conv_code_tensors


def test_openvino_runs_every_conv_of_the_file_in_int8(trained, small_space) -> None:
    """OpenVINO's own record of what it executed (runtime graph + performance counters), per ONNX Conv."""
    supernet, images, _ = trained
    kernels: dict[str, int] = {}
    for genome in export_genomes(small_space):
        model = export_openvino_model(cut_subnet(supernet, genome, images), 48, 48)
        check_qdq_rules(model, activation_types=(np.int8, np.uint8))
        coverage = int8_coverage(model)
        assert coverage.total == sum(n.op_type == "Conv" for n in model.graph.node)
        assert not coverage.other, coverage.other
        for name, count in coverage.kernels.items():
            kernels[name] = kernels.get(name, 0) + count
    assert all(name.lower().endswith("_i8") for name in kernels), kernels
    print("int8 kernels:", kernels)


def test_openvino_file_computes_what_the_model_computes(trained, small_space) -> None:
    """The file, executed exactly as written (onnxruntime without its Q/DQ fusions), reads the model's codes at every conv up to
    rounding-boundary flips; OpenVINO's own kernels agree with it per pixel on CPUs with VNNI, on average over the
    genomes and images. Not everywhere: where OpenVINO fuses a projection conv, its requantization, the residual
    Add and a requantization after it into one conv, its CPU plugin drops the first requantization's rounding
    (``benchmarks/results/openvino_postops.md``). On this barely trained network such a flip spreads to a fifth of
    one image's pixels. With those residual sums also graph outputs (no fusion) OpenVINO computes the file as
    written, up to exact rounding ties."""
    supernet, images, val = trained
    uint8_grids, agreement, agreement_with_file, unfused_agreement, unfused_sums = 0, [], [], [], 0
    for genome in export_genomes(small_space)[:4]:
        subnet = cut_subnet(supernet, genome, images).eval()
        model = export_openvino_model(subnet, 48, 48)
        sums = unrounded_residual_sums(model)
        unfused_sums += len(sums)
        unfused = with_outputs(model, sums)
        inits = {t.name for t in model.graph.initializer}
        uint8_grids += sum(t.data_type == TensorProto.UINT8 for t in model.graph.initializer if t.name in inits)
        code_tensors, out_tensors = conv_code_tensors(model, subnet)
        for i in range(2):
            x = val[i][0][None]
            pairs, ref, out = codes_at_every_conv(subnet, model, x, code_tensors, None, 0,
                                                  out_tensors, as_written=True)
            check_codes(pairs, out, ref, atol=1e-4)
            with torch.no_grad():
                want = subnet(x).numpy()
            got = run_openvino(model, x.numpy())
            assert got.shape == want.shape and np.isfinite(got).all()
            agreement.append(float(np.mean(got.argmax(1) == want.argmax(1))))
            agreement_with_file.append(float(np.mean(got.argmax(1) == out.argmax(1))))
            got = run_openvino(unfused, x.numpy())  # against the file as written (``out``, onnxruntime)
            unfused_agreement.append(float(np.mean(got.argmax(1) == out.argmax(1))))
    print("per image, OpenVINO vs the model:", np.round(agreement, 3),
          "; with the unrounded sums unfused, vs the file as written:", np.round(unfused_agreement, 3))
    if vnni():  # without VNNI OpenVINO's int8 kernels saturate int16 pair sums (qnas.export.openvino)
        assert np.mean(agreement) >= 0.9 and min(agreement) >= 0.5, agreement
        # the dropped rounding is what makes OpenVINO depart from the file: with those sums unfused it computes the
        # file exactly on more images (on the development machine 7 of 8, against 3 of 8 as is; the eighth starts at
        # an exact float32 tie, a requantized value of n + 0.5 that OpenVINO's kernel rounds the other way)
        if unfused_sums:
            exact = sum(a == 1.0 for a in unfused_agreement), sum(a == 1.0 for a in agreement_with_file)
            assert exact[0] > exact[1] and np.mean(unfused_agreement) >= np.mean(agreement_with_file), \
                (unfused_agreement, agreement_with_file)
    assert uint8_grids > 0  # unsigned 8-bit activations stay uint8 (codes 0..255): nothing was widened


def test_mixed_writer_keeps_unsigned_grids_unsigned() -> None:
    from qnas.export.graph import Grid

    writer = MixedQdqGraph()
    assert writer._code_type(Grid.unsigned(0.1, 8))[0] is np.uint8
    assert writer._code_type(Grid.symmetric(0.1, 8))[0] is np.int8
