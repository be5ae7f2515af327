"""DigitScenes: cluttered segmentation scenes composed from scikit-learn's handwritten digits.

The default dataset of qnas needs no download. Each scene places several real 8x8 digits
(``sklearn.datasets.load_digits``), upsampled to different sizes, on a textured background with
line strokes and cut-off digit fragments as distractors. Class 0 is background, class ``d + 1``
is digit ``d``. Digits are faint compared with the clutter by default, so a network that keeps
only a few activation levels loses accuracy: the benchmark rewards precision where it matters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

from qnas.data.registry import register_dataset
from qnas.errors import DataError, FieldError

__all__ = [
    "POOLS",
    "DIGIT_CLASS_NAMES",
    "SceneDifficulty",
    "digit_pools",
    "make_scenes",
    "DigitScenes",
    "digit_splits",
]

POOLS: tuple[str, ...] = ("train", "val", "calib")
DIGIT_CLASS_NAMES: tuple[str, ...] = ("background",) + tuple(str(d) for d in range(10))
_REFERENCE_AREA = 64 * 64  # object counts are given for a 64x64 scene and scale with area
_EDGE = 0.3  # width (in glyph intensity) of the soft ink edge around the mask threshold

_IntRange = tuple[int, int]
_FloatRange = tuple[float, float]
_Cache = dict[tuple[int, int], np.ndarray]


def _as_classes(value: Any) -> tuple[int, ...]:
    try:
        classes = tuple(sorted({int(v) for v in value}))
    except (TypeError, ValueError):
        raise DataError(f"DigitScenes classes must be digits 0-9, got {value!r}") from None
    if not classes or classes[0] < 0 or classes[-1] > 9:
        raise DataError(f"DigitScenes classes must be a non-empty set of digits 0-9, got {value!r}")
    return classes


def _as_range(field: str, value: Any, lo: float, hi: float, kind: type) -> tuple:
    """Normalise a (low, high) pair (YAML gives lists) and check lo <= low <= high <= hi."""
    try:
        low, high = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise FieldError(field, f"needs two numbers (low, high), got {value!r}") from None
    if not lo <= low <= high <= hi:
        raise FieldError(field, f"needs {lo} <= low <= high <= {hi}, got ({low}, {high})")
    return (low, high)


def _as_scalar(field: str, value: Any, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FieldError(field, f"needs a number, got {value!r}") from None
    if not lo <= v <= hi:
        raise FieldError(field, f"needs {lo} <= value <= {hi}, got {v}")
    return v


@dataclass(frozen=True)
class SceneDifficulty:
    """The knobs that make DigitScenes hard; defaults give a precision-sensitive benchmark.

    digits:      digits per scene at 64x64 (scaled with image area), inclusive range.
    scale:       digit height as a fraction of min(height, width); 0.3-0.55 is ~19-35 px at 64.
    contrast:    ink opacity of a digit over its background; low values make faint digits.
    clutter:     amplitude of the background colour gradient and band-limited texture (0 = flat).
    distractors: cut-off digit fragments per scene at 64x64 (labelled background).
    strokes:     random line strokes per scene at 64x64.
    jitter:      per-scene brightness and contrast jitter (gain 1 +- jitter, bias +- jitter/2).
    noise:       standard deviation of per-pixel Gaussian noise, in [0, 1] intensity units.
    threshold:   a digit pixel is labelled where its upsampled intensity exceeds this fraction
                 of the glyph's maximum; ink is half-opaque exactly at the threshold.
    classes:     the digit classes scenes draw from (all ten by default; fewer make an easy task,
                 e.g. for a quick check that training learns). Labels keep their 11-class ids.
    """

    digits: _IntRange = (2, 4)
    scale: _FloatRange = (0.3, 0.55)
    contrast: _FloatRange = (0.5, 1.0)
    clutter: float = 0.4
    distractors: _IntRange = (0, 2)
    strokes: _IntRange = (0, 2)
    jitter: float = 0.15
    noise: float = 0.02
    threshold: float = 0.35
    classes: tuple[int, ...] = tuple(range(10))

    def __post_init__(self) -> None:
        checks = {
            "digits": lambda v: _as_range("digits", v, 0, 1000, int),
            "scale": lambda v: _as_range("scale", v, 0.02, 0.8, float),
            "contrast": lambda v: _as_range("contrast", v, 0.0, 1.0, float),
            "clutter": lambda v: _as_scalar("clutter", v, 0.0, 2.0),
            "distractors": lambda v: _as_range("distractors", v, 0, 1000, int),
            "strokes": lambda v: _as_range("strokes", v, 0, 1000, int),
            "jitter": lambda v: _as_scalar("jitter", v, 0.0, 0.9),
            "noise": lambda v: _as_scalar("noise", v, 0.0, 1.0),
            "threshold": lambda v: _as_scalar("threshold", v, 0.05, 0.95),
            "classes": _as_classes,
        }
        for name, check in checks.items():
            object.__setattr__(self, name, check(getattr(self, name)))

    @classmethod
    def from_kwargs(cls, difficulty: dict[str, Any]) -> SceneDifficulty:
        """Build from keyword arguments, naming the allowed knobs when one is unknown."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(difficulty) - set(allowed))
        if unknown:
            raise DataError(f"unknown DigitScenes difficulty option(s) {unknown}; allowed: {allowed}")
        return cls(**difficulty)


def _source_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digits as float32 glyphs in [0, 1] and their int64 targets."""
    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def _check_pool(pool: str) -> int:
    if pool not in POOLS:
        raise DataError(f"unknown DigitScenes split {pool!r}; allowed: {list(POOLS)}")
    return POOLS.index(pool)


def digit_pools(seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
    """Split the source digit indices into disjoint 'train', 'val' and 'calib' pools.

    Stratified by digit class so every pool holds every digit in the same proportions;
    deterministic for ``seed``. Returns sorted int64 index arrays into ``load_digits()``.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr <= 0) or not np.isclose(fr.sum(), 1.0):
        raise DataError(f"digit pool fractions must be three positive numbers summing to 1, got {fractions}")
    _, targets = _source_digits()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1797]))
    parts: list[list[np.ndarray]] = [[], [], []]
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(targets == digit))
        cuts = np.round(np.cumsum(fr)[:2] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return {name: np.sort(np.concatenate(part)) for name, part in zip(POOLS, parts)}


def _interp_matrix(n_in: int, n_out: int, cache: _Cache) -> np.ndarray:
    """(n_out, n_in) bilinear resampling matrix, pixel-centre aligned, edges clamped."""
    key = (n_in, n_out)
    if key not in cache:
        u = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(u).astype(np.int64)
        w1 = (u - i0).astype(np.float32)
        m = np.zeros((n_out, n_in), dtype=np.float32)
        rows = np.arange(n_out)
        np.add.at(m, (rows, np.clip(i0, 0, n_in - 1)), 1.0 - w1)
        np.add.at(m, (rows, np.clip(i0 + 1, 0, n_in - 1)), w1)
        cache[key] = m
    return cache[key]


def _resize(x: np.ndarray, height: int, width: int, cache: _Cache) -> np.ndarray:
    """Bilinear resize of the last two axes of ``x`` (any leading axes)."""
    my = _interp_matrix(x.shape[-2], height, cache)
    mx = _interp_matrix(x.shape[-1], width, cache)
    return my @ x @ mx.T


def _scaled_count(rng: np.random.Generator, bounds: _IntRange, area_ratio: float) -> int:
    """Draw an object count from ``bounds`` (given at 64x64) scaled to the scene's area."""
    lo = int(round(bounds[0] * area_ratio))
    hi = int(round(bounds[1] * area_ratio))
    if bounds[0] >= 1:
        lo = max(lo, 1)
    return int(rng.integers(lo, max(lo, hi) + 1))


def _background(rng: np.random.Generator, h: int, w: int, clutter: float, cache: _Cache) -> np.ndarray:
    """A smooth colour gradient plus band-limited colour noise, float32 [3, h, w] in [0, 1]."""
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    theta = rng.uniform(0.0, 2.0 * np.pi)
    t = np.cos(theta) * xx + np.sin(theta) * yy
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    c0 = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    c1 = np.clip(c0 + clutter * rng.uniform(-0.8, 0.8, size=3), 0.0, 1.0).astype(np.float32)
    img = c0[:, None, None] + (c1 - c0)[:, None, None] * t
    side = min(h, w)
    tex = np.zeros((3, h, w), dtype=np.float32)
    for cells, weight in ((3, 1.0), (7, 0.8), (14, 0.6)):  # coarse blobs down to stroke-size grain
        gh, gw = max(2, round(cells * h / side)), max(2, round(cells * w / side))
        grid = rng.standard_normal((1, gh, gw)) + 0.6 * rng.standard_normal((3, gh, gw))
        tex += weight * _resize(grid.astype(np.float32), h, w, cache)
    tex /= tex.std() + 1e-6
    return np.clip(img + 0.3 * clutter * tex, 0.0, 1.0)


def _draw_strokes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Paint ``count`` anti-aliased straight strokes of random colour and width onto ``img``."""
    if count == 0:
        return
    _, h, w = img.shape
    unit = min(h, w) / 64.0
    ends = rng.uniform(-0.1, 1.1, size=(count, 2, 2)) * np.array([h, w], dtype=np.float64)
    half = rng.uniform(0.5, 1.8, size=count) * unit
    opacity = rng.uniform(0.3, 0.9, size=count)
    colours = rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32)
    py, px = np.mgrid[0:h, 0:w].astype(np.float64)
    for (a, b), hw, op, col in zip(ends, half, opacity, colours):
        d = b - a
        t = np.clip(((py - a[0]) * d[0] + (px - a[1]) * d[1]) / (d @ d + 1e-9), 0.0, 1.0)
        dist = np.hypot(py - (a[0] + t * d[0]), px - (a[1] + t * d[1]))
        alpha = (np.clip(hw + 0.5 - dist, 0.0, 1.0) * op).astype(np.float32)
        img += alpha * (col[:, None, None] - img)


def _render_glyph(
    glyph: np.ndarray, gh: int, gw: int, threshold: float, cache: _Cache
) -> tuple[np.ndarray, np.ndarray]:
    """Upsample an 8x8 glyph (with a blank border) to (gh, gw): ink alpha and label mask."""
    v = _resize(np.pad(glyph, 1), gh, gw, cache)
    v /= max(float(v.max()), 1e-6)
    alpha = np.clip((v - threshold) / _EDGE + 0.5, 0.0, 1.0)
    return alpha, v > threshold


def _place(
    rng: np.random.Generator, occupied: np.ndarray, mask: np.ndarray, tries: int = 4
) -> tuple[int, int]:
    """Top-left corner for ``mask``: the least-overlapping of a few random candidates."""
    h, w = occupied.shape
    mh, mw = mask.shape
    best, best_overlap = (0, 0), None
    for _ in range(tries):
        y, x = int(rng.integers(0, h - mh + 1)), int(rng.integers(0, w - mw + 1))
        overlap = int(np.count_nonzero(occupied[y : y + mh, x : x + mw] & mask))
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = (y, x), overlap
        if overlap == 0:
            break
    return best


def _ink_colour(rng: np.random.Generator, region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An ink colour on the opposite side of the local background's brightness, random hue."""
    local = region[:, mask].mean(axis=1) if mask.any() else region.reshape(3, -1).mean(axis=1)
    base = rng.uniform(0.0, 0.2) if local.mean() > 0.5 else rng.uniform(0.8, 1.0)
    return np.clip(base + rng.uniform(-0.25, 0.25, size=3), 0.0, 1.0).astype(np.float32)


def _paint(
    rng: np.random.Generator,
    img: np.ndarray,
    alpha: np.ndarray,
    mask: np.ndarray,
    y: int,
    x: int,
    contrast: _FloatRange,
) -> None:
    """Blend an ink of random colour and opacity into ``img`` at (y, x) through ``alpha``."""
    gh, gw = alpha.shape
    region = img[:, y : y + gh, x : x + gw]
    ink = _ink_colour(rng, region, mask)
    opacity = np.float32(rng.uniform(*contrast))
    region += (opacity * alpha) * (ink[:, None, None] - region)


def _glyph_size(rng: np.random.Generator, h: int, w: int, scale: _FloatRange) -> tuple[int, int]:
    """Size of the padded (10x10) glyph box for a digit whose height is a fraction of the scene."""
    core = rng.uniform(*scale) * min(h, w)
    aspect = rng.uniform(0.75, 1.1)
    gh = min(h, max(3, round(core * 10 / 8)))
    gw = min(w, max(3, round(core * aspect * 10 / 8)))
    return gh, gw


def _cut(rng: np.random.Generator, alpha: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a glyph along a straight line at a random angle, keeping 30-60% of its ink.

    The kept piece never shows the whole digit, so a fragment is a fair background example.
    """
    gh, gw = alpha.shape
    theta = rng.uniform(0.0, 2.0 * np.pi)
    proj = np.cos(theta) * np.arange(gh)[:, None] + np.sin(theta) * np.arange(gw)[None, :]
    if not mask.any():
        return alpha, mask
    keep = proj <= np.quantile(proj[mask], rng.uniform(0.3, 0.6))
    return alpha * keep, mask & keep


def _scene(
    rng: np.random.Generator,
    glyphs: np.ndarray,
    targets: np.ndarray,
    pool: np.ndarray,
    h: int,
    w: int,
    d: SceneDifficulty,
    cache: _Cache,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: uint8 image [3, h, w], uint8 labels [h, w] and the source digit indices."""
    area_ratio = h * w / _REFERENCE_AREA
    img = _background(rng, h, w, d.clutter, cache)
    _draw_strokes(rng, img, _scaled_count(rng, d.strokes, area_ratio))
    labels = np.zeros((h, w), dtype=np.uint8)
    occupied = np.zeros((h, w), dtype=bool)
    n_frag = _scaled_count(rng, d.distractors, area_ratio)
    n_dig = _scaled_count(rng, d.digits, area_ratio)
    sources = rng.choice(pool, size=n_frag + n_dig)
    for k, src in enumerate(sources):
        gh, gw = _glyph_size(rng, h, w, d.scale)
        alpha, mask = _render_glyph(glyphs[src], gh, gw, d.threshold, cache)
        is_digit = k >= n_frag  # fragments first: they lie under the digits
        if not is_digit:
            alpha, mask = _cut(rng, alpha, mask)
        y, x = _place(rng, occupied, mask)
        _paint(rng, img, alpha, mask, y, x, d.contrast)
        if is_digit:
            labels[y : y + gh, x : x + gw][mask] = targets[src] + 1
            occupied[y : y + gh, x : x + gw] |= mask
    gain = rng.uniform(1.0 - d.jitter, 1.0 + d.jitter)
    bias = rng.uniform(-d.jitter / 2, d.jitter / 2)
    img = (img - 0.5) * gain + 0.5 + bias
    if d.noise > 0:
        img += rng.normal(0.0, d.noise, size=img.shape).astype(np.float32)
    image = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image, labels, sources.astype(np.int64)


def make_scenes(
    n: int,
    height: int,
    width: int,
    pool: str,
    seed: int,
    *,
    pool_seed: int = 0,
    return_sources: bool = False,
    **difficulty: Any,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Generate ``n`` scenes: images uint8 [n, 3, H, W] and labels uint8 [n, H, W] (0..10).

    Digits and fragments come only from ``digit_pools(pool_seed)[pool]``, so the pools stay
    disjoint whatever ``seed`` each split uses. Scene ``i`` depends only on (seed, pool, i, H, W,
    difficulty), so a longer run extends a shorter one. ``difficulty`` holds the keyword
    knobs of ``SceneDifficulty``. With ``return_sources`` a third item lists, per scene,
    the ``load_digits()`` indices it drew (digits and fragments).
    """
    pool_id = _check_pool(pool)
    if n < 0 or height < 8 or width < 8:
        raise DataError(f"DigitScenes needs n >= 0 and height, width >= 8; got n={n}, {height}x{width}")
    diff = SceneDifficulty.from_kwargs(difficulty)
    glyphs, targets = _source_digits()
    indices = digit_pools(pool_seed)[pool]
    indices = indices[np.isin(targets[indices], diff.classes)]
    images = np.empty((n, 3, height, width), dtype=np.uint8)
    labels = np.empty((n, height, width), dtype=np.uint8)
    sources: list[np.ndarray] = []
    cache: _Cache = {}
    for i, child in enumerate(np.random.SeedSequence([seed, pool_id]).spawn(n)):
        rng = np.random.default_rng(child)
        images[i], labels[i], src = _scene(rng, glyphs, targets, indices, height, width, diff, cache)
        sources.append(src)
    if return_sources:
        return images, labels, sources
    return images, labels


class DigitScenes(Dataset):
    """In-memory DigitScenes split: (image float32 [3, H, W] in [0, 1], label int64 [H, W]).

    Scenes are generated once at construction and stored as uint8 tensors; ``split`` selects
    the disjoint digit pool ('train', 'val' or 'calib') and ``difficulty`` the scene knobs.
    """

    num_classes: int = 11
    class_names: tuple[str, ...] = DIGIT_CLASS_NAMES
    ignore_index: int = 255

    def __init__(self, split: str, n: int, height: int, width: int, seed: int = 0, **difficulty: Any) -> None:
        _check_pool(split)
        if n < 1:
            raise DataError(f"DigitScenes split {split!r} needs n >= 1 scenes, got {n}")
        self.split = split
        self.seed = seed
        self.difficulty = SceneDifficulty.from_kwargs(difficulty)
        images, labels = make_scenes(n, height, width, split, seed, **difficulty)
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float().div_(255.0), self.labels[index].long()


@register_dataset("digits", class_names=lambda data: DIGIT_CLASS_NAMES, in_memory=True)
def digit_splits(data: Any, split: str, height: int, width: int) -> DigitScenes:
    """train / val / search are the train / val / calib digit pools, with ``data.train_scenes`` /
    ``val_scenes`` / ``calib_scenes`` scenes generated from ``data.seed``."""
    pool, n = {"train": ("train", data.train_scenes), "val": ("val", data.val_scenes),
               "search": ("calib", data.calib_scenes)}[split]
    return DigitScenes(pool, n, height, width, seed=data.seed)
