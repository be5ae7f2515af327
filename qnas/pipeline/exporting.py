"""The export stage: a trained policy as the file of a registered profile (ONNX; the ``brevitas`` model's
state dict)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch

from qnas.export.graph import INEXACT_CONVS_KEY
from qnas.data.metrics import AgreementMeter
from qnas.export.profiles import get_profile
from qnas.export.qlinear import WeightKinds, uint8_weight_convs
from qnas.pipeline.context import Context
from qnas.pipeline.paths import output_file
from qnas.pipeline.runs import load_trained
from qnas.space.genome import Genome
from qnas.space.policy import atomic_write_bytes
from qnas.supernet.network import SegNet
from qnas.train.subnet import cut_subnet

__all__ = ["ExportResult", "export_model", "export", "inexact_convs", "score_file"]


def export_model(subnet: SegNet, fmt: str, height: int, width: int) -> Any:
    """The model of an already cut (and BN-recalibrated) subnet in profile ``fmt`` (an ONNX model, or what
    the profile exports: the ``brevitas`` profile's brevitas model); ``subnet`` is left as it is."""
    return get_profile(fmt).export(subnet, height, width)


def inexact_convs(model: Any) -> list[str]:
    """The convs an exported model lists as possibly rounded by float32 execution (see qnas.export.codes);
    none for a model that is not ONNX."""
    if not isinstance(model, onnx.ModelProto):
        return []
    props = {p.key: p.value for p in model.metadata_props}
    return [label for label in props.get(INEXACT_CONVS_KEY, "").split(",") if label]


@dataclass
class ExportResult:
    path: Path
    model: Any  # an onnx.ModelProto, or the profile's model (brevitas)
    size_bytes: int
    inexact_convs: list[str]
    weights: WeightKinds = WeightKinds(0, 0)  # integer convs with uint8 weights, of how many (the ort file)


def export(ctx: Context, checkpoint: str | os.PathLike[str], genome: Genome, fmt: str,
           out: str | os.PathLike[str], height: int | None = None, width: int | None = None) -> ExportResult:
    """Cut ``genome``'s subnet from a trained run, recalibrate its BatchNorm as evaluation does, and
    write it atomically as profile ``fmt`` at ``height`` x ``width`` (default: the deployment size)."""
    height, width = height or ctx.deploy_hw[0], width or ctx.deploy_hw[1]
    profile = get_profile(fmt)  # an unknown format fails before any work
    output_file(out)
    ctx.setup_torch()
    supernet, _ = load_trained(ctx.config, checkpoint)
    model = profile.export(cut_subnet(supernet, genome, ctx.bn_images), height, width)
    data = profile.serialize(model)
    atomic_write_bytes(Path(out), data)
    weights = uint8_weight_convs(model) if isinstance(model, onnx.ModelProto) else WeightKinds(0, 0)
    return ExportResult(Path(out), model, len(data), inexact_convs(model), weights)


def score_file(ctx: Context, subnet: SegNet, fmt: str, split: str = "val") -> dict[str, float]:
    """mIoU and pixel accuracy of ``subnet`` exported as profile ``fmt`` and run in that profile's runtime on
    ``split`` image by image (one file per image size), the share of pixels whose class agrees with the
    model's, the largest |logit difference| and the model's own mIoU on the same images: what the deployed
    file scores, measured rather than assumed."""
    profile = get_profile(fmt)
    meter = AgreementMeter(ctx.num_classes, ctx.ignore_index)
    runners: dict[tuple[int, int], object] = {}
    subnet.eval()
    with torch.no_grad():
        for images, labels in ctx.loader(split):
            reference = subnet(images)
            for image, label, expected in zip(images, labels, reference):
                hw = (int(image.shape[-2]), int(image.shape[-1]))
                if hw not in runners:
                    runners[hw] = profile.runner(profile.export(subnet, *hw))
                meter.update(runners[hw](image[None].numpy()), expected[None], label[None])
    return {"miou": float(meter.meter.miou()), "pixel_acc": float(meter.meter.pixel_accuracy()),
            "agreement": meter.agreement(), "model_miou": float(meter.reference.miou()),
            "max_logit_diff": meter.max_diff}
