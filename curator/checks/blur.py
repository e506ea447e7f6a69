"""``blurry``: out-of-focus or motion-blurred images.

The measure, :func:`edge_sharpness`, works on the analysis-size gray image (long side 512), so it does not depend on
the file's resolution, and it normalises every edge by its own contrast, so smooth, low-texture artwork that is crisp
is not called blurry. The variance of the Laplacian is reported beside it as supporting evidence.

The judge fires when the sharpness is below an absolute threshold AND clearly below the dataset's own median, so a
dataset drawn in a soft style is not flagged wholesale. Severity by strength.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curator.checks._imageops import laplacian
from curator.checks.base import CheckContext, ImageCheck, Metrics
from curator.findings import Finding, Severity


def _window_extreme(a: np.ndarray, size: int, fn: np.ufunc) -> np.ndarray:
    """Separable max/min filter (``fn`` = np.maximum or np.minimum) over a ``size`` x ``size`` window."""
    half = size // 2
    p = np.pad(a, half, mode="edge")
    h, w = a.shape
    rows = p[:, 0:w].copy()
    for i in range(1, size):
        fn(rows, p[:, i : i + w], out=rows)
    out = rows[0:h].copy()
    for i in range(1, size):
        fn(out, rows[i : i + h], out=out)
    return out


def edge_sharpness(
    gray: np.ndarray, window: int = 5, min_contrast: float = 40.0, percentile: float = 99.0
) -> float | None:
    """How steep the image's steepest edges are, independent of their contrast: 0 (blurred) .. 1 (a one-pixel step).

    At every pixel whose ``window`` x ``window`` neighbourhood spans at least ``min_contrast`` grey levels, the largest
    one-pixel difference is divided by that local range; the ``percentile`` of these ratios describes the sharpest
    edges in the picture. A Gaussian blur of sigma s pixels caps the ratio near 0.4 / s, while a crisp edge reaches
    0.6-1 whatever its contrast, so smooth, low-texture but crisp artwork scores as sharp and a shallow depth of field
    (some edges sharp) is not mistaken for blur. None when the image has too few edges to judge.
    """
    g = np.asarray(gray, dtype=np.float32)
    if min(g.shape) < window + 2:
        return None
    grad = np.maximum(np.abs(np.diff(g, axis=1))[:-1, :], np.abs(np.diff(g, axis=0))[:, :-1])
    core = g[:-1, :-1]
    spread = _window_extreme(core, window, np.maximum) - _window_extreme(core, window, np.minimum)
    edges = spread >= min_contrast
    if int(edges.sum()) < 50:
        return None
    return float(np.percentile(grad[edges] / spread[edges], percentile))


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (higher is sharper; depends on texture and contrast)."""
    g = np.asarray(gray, dtype=np.float32)
    if min(g.shape) < 3:
        return 0.0
    return float(laplacian(g).var())


class BlurCheck(ImageCheck):
    """Flags images that are blurry in absolute terms and compared with the rest of the dataset.

    Example::

        metrics = BlurCheck().measure(view, BlurCheck.defaults)   # {"edge_sharpness": 0.71, "laplacian_var": 412.0}
    """

    name = "blurry"
    codes = ("blurry",)
    version = 2
    defaults: ClassVar[dict[str, Any]] = {
        "threshold": 0.5,  # edge_sharpness below this is blurry in absolute terms (crisp edges: 0.6-1)
        "strong_threshold": 0.38,  # ... below this it is an error
        "relative_factor": 0.85,  # and it must be below this fraction of the dataset median
        "min_images_for_median": 8,  # with fewer images the relative test is skipped
    }

    def measure(self, view: Any, params: dict[str, Any]) -> Metrics:
        """``edge_sharpness`` (None without enough edges) and ``laplacian_var`` of ``view.gray``."""
        sharp = edge_sharpness(view.gray)
        return {
            "edge_sharpness": None if sharp is None else round(sharp, 4),
            "laplacian_var": round(laplacian_variance(view.gray), 2),
        }

    def judge(self, record: Any, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """A ``blurry`` finding when both the absolute and the relative test fire."""
        value = record.metrics.get("edge_sharpness")
        if not isinstance(value, int | float):
            return []
        median = _dataset_median(context, params)
        limit = float(params["threshold"])
        if median is not None:
            limit = min(limit, median * float(params["relative_factor"]))
        if value >= limit:
            return []
        strong = value < min(float(params["strong_threshold"]), limit)
        evidence = {
            "metric": "edge_sharpness",
            "edge_sharpness": value,
            "threshold": round(limit, 4),
            "absolute_threshold": params["threshold"],
            "dataset_median": None if median is None else round(median, 4),
            "laplacian_var": record.metrics.get("laplacian_var"),
        }
        message = f"Image looks blurry (edge sharpness {value:.2f} < {limit:.2f}"
        message += f"; dataset median {median:.2f})" if median is not None else ")"
        severity = Severity.ERROR if strong else Severity.WARNING
        return [Finding("blurry", severity, message, evidence, record.item.rel)]


def _dataset_median(context: CheckContext, params: dict[str, Any]) -> float | None:
    key = "blurry.median"
    if key not in context.cache:
        values = context.metric_values("edge_sharpness")
        enough = len(values) >= int(params["min_images_for_median"])
        context.cache[key] = float(np.median(values)) if enough else None
    return context.cache[key]


CHECKS = [BlurCheck()]
