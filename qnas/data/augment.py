"""Training augmentation of image and mask together, batched, through kornia (``data.augment``).

The standard recipe for segmentation: a random rescale of the full-resolution image (``scale``), a
random crop of the training size with the ignore index wherever the rescaled image does not cover
it, a horizontal flip (``flip``), and photometric jitter of the image alone (``jitter``).
kornia's ``AugmentationSequential(..., data_keys=["input", "mask"])`` moves the mask with the
image (nearest resampling, so class ids stay class ids) and runs on whatever device the batch is on.

kornia pads with 0, which is a class id. The mask therefore travels shifted by one (ids 1..N, the
ignore index ``I + 1``) and whatever comes back as 0 was padding and becomes the ignore index.

The random draws of a batch come from a seed the caller gives (the trainer derives it from the
run's seed and the batch's position), so a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from qnas.config import AugmentConfig

__all__ = ["Augmentation", "build_augmentation", "batch_seed"]


def batch_seed(*position: int) -> int:
    """A 63-bit seed for the random draws of one batch, from the run's seed and the batch's position."""
    return int(np.random.SeedSequence([int(p) for p in position]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class Augmentation:
    """``augmentation(images [B,3,H,W], labels [B,H,W], seed)`` -> the augmented batch at ``size``."""

    def __init__(self, config: AugmentConfig, size: tuple[int, int], ignore_index: int) -> None:
        import kornia.augmentation as K  # the only module that needs kornia

        self.config = config
        self.size = (int(size[0]), int(size[1]))
        self.ignore_index = int(ignore_index)
        steps = []
        if config.scale is not None:
            low, high = config.scale
            # at the largest zoom the visible window is 1/high of the image: let it reach every part of it
            shift = max(0.0, (1.0 - 1.0 / high) / 2.0)
            steps.append(K.RandomAffine(degrees=0.0, scale=(low, high), translate=(shift, shift), p=1.0))
            steps.append(K.RandomCrop(self.size, pad_if_needed=True))
        if config.flip > 0:
            steps.append(K.RandomHorizontalFlip(p=config.flip))
        if any(config.jitter):
            steps.append(K.ColorJitter(*config.jitter, p=1.0))
        self.pipeline = K.AugmentationSequential(*steps, data_keys=["input", "mask"]) if steps else None

    def __call__(self, images: Tensor, labels: Tensor, seed: int) -> tuple[Tensor, Tensor]:
        if self.pipeline is None:
            return images, labels
        devices = [images.device.index or 0] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            shifted = (labels + 1).unsqueeze(1).to(images.dtype)
            out, mask = self.pipeline(images, shifted)
        mask = mask.squeeze(1).round().long() - 1
        mask[mask < 0] = self.ignore_index
        return out.clamp_(0.0, 1.0), mask

    def __repr__(self) -> str:
        return f"Augmentation({self.config}, size={self.size})"


def build_augmentation(config: AugmentConfig, size: tuple[int, int], ignore_index: int) -> Augmentation | None:
    """The training augmentation of ``data.augment`` (None when it is off)."""
    return Augmentation(config, size, ignore_index) if config.enabled else None
