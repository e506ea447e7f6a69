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
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class BucketSettings:
    """Bucket parameters, named as in Kohya sd-scripts (area = resolution^2)."""

    resolution: int = 512
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    enable_bucket: bool = True


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
            settings.resolution, settings.min_bucket_reso, settings.max_bucket_reso, settings.bucket_reso_steps
        )
    )


def select_bucket(width: int, height: int, settings: BucketSettings) -> BucketChoice:
    """The bucket an image of ``width`` x ``height`` lands in: nearest aspect ratio wins, scale to cover, centre crop.

    With ``enable_bucket`` off every image goes to resolution x resolution.
    """
    if not settings.enable_bucket:
        buckets = [(settings.resolution, settings.resolution)]
    else:
        buckets = make_buckets(settings)
    aspect = width / height
    bucket = min(buckets, key=lambda b: abs(b[0] / b[1] - aspect))
    bucket_aspect = bucket[0] / bucket[1]
    scale = bucket[1] / height if aspect > bucket_aspect else bucket[0] / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    kept = (bucket[0] * bucket[1]) / max(1, resized[0] * resized[1])
    return BucketChoice(bucket=bucket, resized=resized, crop_fraction=max(0.0, 1.0 - kept))
