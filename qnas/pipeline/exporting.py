"""The export stage: a trained policy as an ONNX file of a registered profile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from qnas.export.graph import INEXACT_CONVS_KEY
from qnas.data.metrics import ConfusionMeter
from qnas.export.profiles import get_profile
from qnas.pipeline.context import Context
from qnas.pipeline.paths import output_file
from qnas.pipeline.runs import load_trained
from qnas.space.genome import Genome
from qnas.space.policy import atomic_write_bytes
from qnas.supernet.network import SegNet
from qnas.train.subnet import cut_subnet

__all__ = ["ExportResult", "export_model", "export", "inexact_convs", "score_file"]


def export_model(subnet: SegNet, fmt: str, height: int, width: int) -> onnx.ModelProto:
    """The ONNX model of an already cut (and BN-recalibrated) subnet in profile ``fmt``; ``subnet`` is
    left as it is."""
    return get_profile(fmt).export(subnet, height, width)


def inexact_convs(model: onnx.ModelProto) -> list[str]:
    """The convs an exported model lists as possibly rounded by float32 execution (see qnas.export.codes)."""
    props = {p.key: p.value for p in model.metadata_props}
    return [label for label in props.get(INEXACT_CONVS_KEY, "").split(",") if label]


@dataclass
class ExportResult:
    path: Path
    model: onnx.ModelProto
    size_bytes: int
    inexact_convs: list[str]


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
    data = model.SerializeToString()
    atomic_write_bytes(Path(out), data)
    return ExportResult(Path(out), model, len(data), inexact_convs(model))


def score_file(ctx: Context, subnet: SegNet, fmt: str, split: str = "val") -> dict[str, float]:
    """mIoU and pixel accuracy of ``subnet`` exported as profile ``fmt`` and run in that profile's runtime on
    ``split`` image by image (one file per image size), the share of pixels whose class agrees with the
    model's, and the model's own mIoU on the same images: what the deployed file scores, measured rather
    than assumed."""
    profile = get_profile(fmt)
    meter = ConfusionMeter(ctx.num_classes, ctx.ignore_index)
    model_meter = ConfusionMeter(ctx.num_classes, ctx.ignore_index)
    runners: dict[tuple[int, int], object] = {}
    agree = total = 0
    subnet.eval()
    with torch.no_grad():
        for images, labels in ctx.loader(split):
            reference = subnet(images).argmax(1)
            model_meter.update(reference, labels)
            for image, label, expected in zip(images, labels, reference):
                hw = (int(image.shape[-2]), int(image.shape[-1]))
                if hw not in runners:
                    runners[hw] = profile.runner(profile.export(subnet, *hw))
                pred = torch.from_numpy(runners[hw](image[None].numpy()).argmax(1))
                meter.update(pred, label[None])
                agree += int((pred[0] == expected).sum())
                total += expected.numel()
    return {"miou": float(meter.miou()), "pixel_acc": float(meter.pixel_accuracy()), "agreement": agree / total,
            "model_miou": float(model_meter.miou())}
