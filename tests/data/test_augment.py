"""Training augmentation: image and mask move together, padding is ignored, the draws follow the seed."""

from __future__ import annotations

import pytest
import torch

from qnas.config import AugmentConfig
from qnas.data.augment import Augmentation, batch_seed, build_augmentation

IGNORE = 255


def _pattern(batch: int = 4, height: int = 64, width: int = 96, block: int = 8, classes: int = 5):
    """Images whose channels 0 and 1 hold each pixel's x and y (so a pixel knows where it came from) and
    masks of the class of its block: after any geometric change, the mask must equal the class that the
    image's own coordinates name."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    image = torch.stack([(xs + 0.5) / width, (ys + 0.5) / height, torch.zeros_like(xs)])
    labels = ((xs // block + ys // block) % classes).long()
    labels[:block, :block] = IGNORE  # one ignored block
    return image.expand(batch, -1, -1, -1).clone(), labels.expand(batch, -1, -1).clone()


def _expected(images: torch.Tensor, height: int, width: int, block: int = 8, classes: int = 5) -> torch.Tensor:
    x = (images[:, 0] * width).floor().clamp(0, width - 1)
    y = (images[:, 1] * height).floor().clamp(0, height - 1)
    expected = ((x // block + y // block) % classes).long()
    expected[(x < block) & (y < block)] = IGNORE
    return expected


def _interior(images: torch.Tensor, height: int, width: int, block: int = 8) -> torch.Tensor:
    """Pixels whose source position is not within one pixel of a block edge (bilinear blends edges)."""
    x = images[:, 0] * width
    y = images[:, 1] * height
    return ((x % block - block / 2).abs() < block / 2 - 1) & ((y % block - block / 2).abs() < block / 2 - 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_moves_with_the_image(seed: int) -> None:
    images, labels = _pattern()
    augment = Augmentation(AugmentConfig(scale=(0.5, 2.0), flip=0.5), (32, 64), IGNORE)
    out, mask = augment(images, labels, seed)
    assert out.shape == (4, 3, 32, 64) and mask.shape == (4, 32, 64) and mask.dtype == torch.int64
    # away from ignored pixels (padding: the image there blends with black) and from block edges
    ignored = (mask == IGNORE).float().unsqueeze(1)
    near_ignored = torch.nn.functional.max_pool2d(ignored, 3, stride=1, padding=1).squeeze(1) > 0
    inside = ~near_ignored & _interior(out, 64, 96)
    assert inside.sum() > 500
    assert torch.equal(mask[inside], _expected(out, 64, 96)[inside])
    assert torch.isin(mask.unique(), torch.tensor([0, 1, 2, 3, 4, IGNORE])).all()


def test_padding_is_ignored_and_flips_happen() -> None:
    images, labels = _pattern()
    zoom_out = Augmentation(AugmentConfig(scale=(0.5, 0.5)), (64, 96), IGNORE)
    out, mask = zoom_out(images, labels, 7)
    padded = (out[:, 0] == 0) & (out[:, 1] == 0)
    assert padded.float().mean() > 0.5  # the image shrank to a quarter of the crop
    assert (mask[padded] == IGNORE).all()
    assert ((mask != IGNORE) & ~padded).any()
    flip = Augmentation(AugmentConfig(flip=1.0), (64, 96), IGNORE)
    out, mask = flip(images, labels, 0)
    assert torch.equal(out, images.flip(-1)) and torch.equal(mask, labels.flip(-1))


def test_jitter_changes_the_image_not_the_mask() -> None:
    images, labels = _pattern()
    images[:, 2] = 0.5
    out, mask = Augmentation(AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.1)), (64, 96), IGNORE)(images, labels, 3)
    assert torch.equal(mask, labels)
    assert not torch.allclose(out, images) and out.min() >= 0 and out.max() <= 1


def test_draws_follow_the_seed_and_leave_the_global_generator_alone() -> None:
    images, labels = _pattern()
    augment = Augmentation(AugmentConfig(scale=(0.5, 2.0), flip=0.5, jitter=(0.2, 0.2, 0.2, 0.0)), (32, 64), IGNORE)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = augment(images, labels, batch_seed(0, 1, 2, 3))
    assert torch.equal(torch.get_rng_state(), state)
    b = augment(images, labels, batch_seed(0, 1, 2, 3))
    c = augment(images, labels, batch_seed(0, 1, 2, 4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # every sample of a batch draws its own scale, crop and flip
    assert not torch.equal(a[1][0], a[1][1])


def test_off_by_default() -> None:
    assert build_augmentation(AugmentConfig(), (32, 32), IGNORE) is None
    assert not AugmentConfig().enabled and AugmentConfig(flip=0.5).enabled
