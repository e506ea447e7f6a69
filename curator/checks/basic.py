"""Basic per-image checks: size, aspect crop, transparency, grayscale.

Codes: ``too_small``, ``extreme_aspect``, ``alpha_channel``, ``grayscale``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curator.checks.base import CheckContext, ImageCheck, Metrics
from curator.findings import Finding, Severity
from curator.images.view import ImageView
from curator.plan.buckets import BucketSettings, select_bucket
from curator.scan.results import ItemRecord

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


class TooSmall(ImageCheck):
    """Short side under the training resolution: the image is upscaled and trains soft."""

    name = "too_small"
    codes = ("too_small",)
    # tiny_px: below this short side it is an error, not a warning
    defaults: ClassVar[dict[str, Any]] = {"tiny_px": 64}

    def judge(self, record: ItemRecord, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        short = min(record.width, record.height)
        target = context.settings.resolution
        if short >= target:
            return []
        tiny = short < params["tiny_px"]
        return [
            Finding(
                "too_small",
                Severity.ERROR if tiny else Severity.WARNING,
                f"Short side {short} px is under the training resolution {target} px (upscaled, trains soft)",
                {"short_side": short, "resolution": target, "tiny_px": params["tiny_px"]},
            )
        ]


class ExtremeAspect(ImageCheck):
    """A large share of the image is cropped away by its Kohya bucket."""

    name = "extreme_aspect"
    codes = ("extreme_aspect",)
    # max_crop: fraction of the resized image the centre crop may remove
    defaults: ClassVar[dict[str, Any]] = {"max_crop": 0.20}

    def judge(self, record: ItemRecord, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        s = context.settings
        buckets = BucketSettings.of(s)
        if record.width <= 0 or record.height <= 0:
            return []
        choice = select_bucket(record.width, record.height, buckets)
        if choice.crop_fraction <= params["max_crop"]:
            return []
        return [
            Finding(
                "extreme_aspect",
                Severity.WARNING,
                f"Bucket {choice.bucket[0]}x{choice.bucket[1]} crops away {choice.crop_fraction:.0%} of the image "
                f"(aspect {record.width / record.height:.2f})",
                {
                    "crop_fraction": round(choice.crop_fraction, 4),
                    "threshold": params["max_crop"],
                    "bucket": list(choice.bucket),
                },
            )
        ]


class AlphaChannel(ImageCheck):
    """Transparency: training composites the image on white, so what is under the alpha is not what it learns.

    The message tells fully transparent pixels (they train as plain white) from partly transparent ones (blended
    with white): an overlay whose alpha is never 0 is not "transparent pixels".
    """

    name = "alpha_channel"
    codes = ("alpha_channel",)
    version = 2
    # min_share: share of (partly) transparent pixels that is worth a warning
    defaults: ClassVar[dict[str, Any]] = {"min_share": 0.01}

    def measure(self, view: ImageView, params: dict[str, Any]) -> Metrics:
        if view.alpha is None:
            return {"has_alpha": False}
        alpha = view.alpha
        return {
            "has_alpha": True,
            "transparent_share": float((alpha < 250).mean()),  # partly or fully transparent
            "clear_share": float((alpha <= 5).mean()),  # fully transparent: trains as plain white
            "min_alpha": int(alpha.min()) if alpha.size else 255,
        }

    def judge(self, record: ItemRecord, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        m = record.metrics
        share = m.get("transparent_share")
        if share is None or share < params["min_share"]:
            return []
        return [
            Finding(
                "alpha_channel",
                Severity.WARNING,
                transparency_message(share, float(m.get("clear_share", 0.0))),
                {
                    "transparent_share": round(share, 4),
                    "clear_share": round(float(m.get("clear_share", 0.0)), 4),
                    "min_alpha": m.get("min_alpha"),
                    "threshold": params["min_share"],
                    "trains_on": "white",
                },
            )
        ]


def transparency_message(share: float, clear: float) -> str:
    """What training does with this image's transparency, in one line (it composites on white)."""
    partly = share - clear
    if clear >= 0.005 and partly >= 0.005:
        what = f"{clear:.0%} of the pixels are fully transparent and {partly:.0%} partly"
    elif clear >= 0.005:
        what = f"{clear:.0%} of the pixels are fully transparent"
    else:
        what = f"{share:.0%} of the pixels are partly transparent (none fully)"
    return f"{what}: training composites them on white (flatten on the background you want first)"


class Grayscale(ImageCheck):
    """Gray images (gray file modes, or RGB files whose channels are equal): the model learns the lack of colour."""

    name = "grayscale"
    codes = ("grayscale",)
    version = 3
    # channel differences (max - min over R, G, B), 0..255: mean and 99th percentile
    defaults: ClassVar[dict[str, Any]] = {"max_mean_spread": 1.5, "max_p99_spread": 6.0}

    def measure(self, view: ImageView, params: dict[str, Any]) -> Metrics:
        rgb = view.color_sample()  # colour is not a fine detail: nearest-neighbour samples
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        spread = (
            np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        ).ravel()  # uint8, no overflow
        if not spread.size:
            return {"color_spread_mean": 0.0, "color_spread_p99": 0.0}
        histogram = np.bincount(spread, minlength=256)
        p99 = int(np.searchsorted(np.cumsum(histogram), 0.99 * spread.size))
        return {"color_spread_mean": float(spread.mean()), "color_spread_p99": float(p99)}

    def judge(self, record: ItemRecord, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        mode = record.metrics.get("mode", "")
        mean = record.metrics.get("color_spread_mean")
        p99 = record.metrics.get("color_spread_p99")
        gray_mode = mode in _GRAY_MODES
        gray_pixels = (
            mean is not None and mean <= params["max_mean_spread"] and p99 <= params["max_p99_spread"]
        )
        if not (gray_mode or gray_pixels):
            return []
        how = f"grayscale file ({mode})" if gray_mode else "colour file with gray pixels"
        return [
            Finding(
                "grayscale",
                Severity.INFO,
                f"No colour: {how}; fine for a black-and-white style, a problem for a colour subject",
                {"mode": mode, "color_spread_mean": mean, "threshold": params["max_mean_spread"]},
            )
        ]


CHECKS = [TooSmall(), ExtremeAspect(), AlphaChannel(), Grayscale()]
