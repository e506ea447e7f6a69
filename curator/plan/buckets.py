"""Kohya sd-scripts aspect-ratio buckets: generation and assignment. The one implementation the plan, the checks
and the trainer all use.

Example::

    >>> settings = BucketSettings(resolution=512)
    >>> len(make_buckets(settings))
    17
    >>> select_bucket(1000, 500, settings).bucket
    (704, 320)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from curator.settings.config import TrainConfig

_DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class BucketSettings:
    """Bucket parameters, named as in Kohya sd-scripts (area = resolution^2)."""

    # the training settings' own defaults (curator.settings.config.TrainConfig): one default each
    resolution: int = _DEFAULTS.resolution
    min_bucket_reso: int = _DEFAULTS.min_bucket_reso
    max_bucket_reso: int = _DEFAULTS.max_bucket_reso
    bucket_reso_steps: int = _DEFAULTS.bucket_reso_steps
    bucket_no_upscale: bool = _DEFAULTS.bucket_no_upscale
    enable_bucket: bool = _DEFAULTS.enable_bucket

    def __post_init__(self) -> None:
        # the same rules the trainer's config enforces: latents are 1/8 of the pixels, so every side the
        # buckets produce must be a multiple of 8; a ValueError here is one line a command can show as is
        if self.resolution < 64 or self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8 and at least 64, got {self.resolution}")
        if self.bucket_reso_steps <= 0 or self.bucket_reso_steps % 8:
            raise ValueError(
                f"bucket_reso_steps must be a positive multiple of 8, got {self.bucket_reso_steps}"
            )
        if not 0 < self.min_bucket_reso <= self.max_bucket_reso:
            raise ValueError(
                f"min_bucket_reso must be positive and at most max_bucket_reso, got "
                f"{self.min_bucket_reso} and {self.max_bucket_reso}"
            )

    @classmethod
    def of(cls, source: Any, **overrides: Any) -> BucketSettings:
        """The bucket settings named on ``source`` — any object with Kohya's field names (a ``TrainConfig``,
        ``PlanOptions`` or ``ScanSettings``); fields it lacks keep their defaults, ``overrides`` win.

        >>> BucketSettings.of(BucketSettings(resolution=768), max_bucket_reso=1280).max_bucket_reso
        1280
        """
        values = {f.name: getattr(source, f.name) for f in fields(cls) if hasattr(source, f.name)}
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class BucketChoice:
    """Where one image goes: the bucket (width, height), the size it is resized to before the centre crop, and the
    fraction of the resized image's area the crop removes."""

    bucket: tuple[int, int]
    resized: tuple[int, int]
    crop_fraction: float


@lru_cache(maxsize=64)
def _buckets(resolution: int, min_reso: int, max_reso: int, steps: int) -> tuple[tuple[int, int], ...]:
    max_area = resolution * resolution
    resos: set[tuple[int, int]] = set()
    side = int(math.sqrt(max_area) // steps) * steps
    resos.add((side, side))
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, int((max_area // width) // steps) * steps)
        if height >= min_reso:
            resos.add((width, height))
            resos.add((height, width))
        width += steps
    return tuple(sorted(resos))


def make_buckets(settings: BucketSettings) -> list[tuple[int, int]]:
    """The bucket resolutions (width, height), sorted, as Kohya's ``make_bucket_resolutions`` generates them."""
    return list(
        _buckets(
            settings.resolution,
            settings.min_bucket_reso,
            settings.max_bucket_reso,
            settings.bucket_reso_steps,
        )
    )


def _round_to_steps(value: float, steps: int) -> int:
    # Kohya's BucketManager.round_to_steps: round half up to an integer, then down to a multiple of steps.
    rounded = int(value + 0.5)
    return rounded - rounded % steps


def _no_upscale_resize(width: int, height: int, settings: BucketSettings) -> tuple[int, int]:
    """The size an image is shrunk to under ``bucket_no_upscale`` (never enlarged): Kohya's arithmetic.

    Only an image larger than resolution^2 in area shrinks, keeping its aspect ratio; of the two ways to put one
    side on the step grid, the one whose aspect ratio errs least wins (the width-first way on a tie).
    """
    max_area = settings.resolution * settings.resolution
    if width * height <= max_area:
        return width, height
    aspect = width / height
    steps = settings.bucket_reso_steps
    resized_width = math.sqrt(max_area * aspect)
    resized_height = max_area / resized_width
    width_rounded = _round_to_steps(resized_width, steps)
    height_in_wr = _round_to_steps(width_rounded / aspect, steps)
    height_rounded = _round_to_steps(resized_height, steps)
    width_in_hr = _round_to_steps(height_rounded * aspect, steps)
    # Kohya divides by the rounded side without a guard; a zero there only happens for extreme aspect ratios.
    err_w = abs(width_rounded / height_in_wr - aspect) if height_in_wr else math.inf
    err_h = abs(width_in_hr / height_rounded - aspect) if height_rounded else math.inf
    if err_w < err_h:
        return width_rounded, int(width_rounded / aspect + 0.5)
    return int(height_rounded * aspect + 0.5), height_rounded


def _choice(bucket: tuple[int, int], resized: tuple[int, int]) -> BucketChoice:
    kept = (bucket[0] * bucket[1]) / max(1, resized[0] * resized[1])
    return BucketChoice(bucket=bucket, resized=resized, crop_fraction=max(0.0, 1.0 - kept))


def select_bucket(width: int, height: int, settings: BucketSettings) -> BucketChoice:
    """The bucket an image of ``width`` x ``height`` lands in, as Kohya's ``BucketManager.select_bucket`` decides.

    Default: an image whose size is exactly a bucket keeps it; otherwise the bucket with the nearest aspect ratio
    wins (the first in sorted order on a tie), the image is scaled to cover it and centre-cropped.
    With ``bucket_no_upscale`` the image is only ever shrunk (to an area of resolution^2 when larger) and its bucket
    is its own size floored to the step grid: min / max bucket reso are ignored, as in Kohya. A bucket side of 0
    (an image smaller than one step) means the image cannot be trained.
    With ``enable_bucket`` off every image goes to resolution x resolution.
    """
    if settings.enable_bucket and settings.bucket_no_upscale:
        resized = _no_upscale_resize(width, height, settings)
        steps = settings.bucket_reso_steps
        bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
        return _choice(bucket, resized)
    if not settings.enable_bucket:
        buckets = [(settings.resolution, settings.resolution)]
    else:
        buckets = make_buckets(settings)
    aspect = width / height
    if (width, height) in buckets:
        bucket = (width, height)
    else:
        bucket = min(buckets, key=lambda b: abs(b[0] / b[1] - aspect))
    bucket_aspect = bucket[0] / bucket[1]
    scale = bucket[1] / height if aspect > bucket_aspect else bucket[0] / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    return _choice(bucket, resized)
