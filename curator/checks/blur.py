"""``blurry``: out-of-focus (defocus) and motion-blurred images, told apart and named in the evidence.

The measure, :func:`sharpness_profile`, reads the view's detail level (long side <= 1024, so small blur radii are
still visible and the result does not depend on the file's resolution) on a bounded sample of its highest-contrast
tiles, where the signal is. At every edge pixel it divides the gradient by the local contrast (the range of its 5x5
neighbourhood): a crisp edge reaches 1 whatever its contrast, an edge spread over ``w`` pixels about ``2 / w``. The
edge pixels are binned by gradient orientation (8 bins of 22.5 degrees) and each bin's 99th percentile is the
sharpness across edges facing that way.

- Defocus spreads every edge: even the sharpest orientation is low (``sharpness_best``), i.e. the image has lost
  its high frequencies relative to its own edge contrast.
- Motion blur of length ``L`` along a direction spreads the edges facing that direction over ``L`` pixels and leaves
  the edges along it crisp: one orientation is low while the best stays high (``sharpness_worst``, its angle).
- A shallow depth of field (a sharp subject on a soft background) keeps crisp edges in every orientation on the
  subject, so it is not called blurry; an orientation with too few edges is no evidence (``None``).
- Blur strong enough to leave too few steep edges to compare orientations (no ``sharpness_best``) is judged by how
  steep the steepest edges are anywhere (``sharpness_any``): blurred throughout.

The judge fires when a measure is below its absolute threshold AND clearly below the dataset's own median, so a
dataset drawn in a soft style is not flagged wholesale. Severity by strength.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from curator.checks._imageops import tile_range
from curator.checks.base import CheckContext, ImageCheck, Metrics
from curator.findings import Finding, Severity

#: Gradient-orientation bins over 180 degrees.
N_BINS = 8
TILE = 32
#: The local-contrast window (pixels): an edge spread wider than it reads as ``2 / (WINDOW - 1)``, so it bounds the
#: blur widths told apart; 9 px holds a crisp edge with both of its sides and tells widths up to 8 px.
WINDOW = 9
_MARGIN = WINDOW // 2 + 1  # pixels read around a tile for its gradients and windows


def _running(a: np.ndarray, size: int, fn: np.ufunc, axis: int) -> np.ndarray:
    """``fn`` over every run of ``size`` consecutive samples along ``axis`` (valid runs only), by doubling: runs of
    2, 4, 8... combined, then one last overlapping step; log2(size) passes instead of size - 1, exactly equal."""
    n = a.shape[axis]

    def part(x: np.ndarray, start: int, length: int) -> np.ndarray:
        return x[(slice(None),) * (axis % x.ndim) + (slice(start, start + length),)]

    width, run = 1, a
    while width * 2 <= size:
        run = fn(part(run, 0, run.shape[axis] - width), part(run, width, run.shape[axis] - width))
        width *= 2
    out_len = n - size + 1
    if width == size:
        return part(run, 0, out_len)
    return fn(part(run, 0, out_len), part(run, size - width, out_len))


def _window_extreme(a: np.ndarray, size: int, fn: np.ufunc) -> np.ndarray:
    """Max/min (``fn`` = np.maximum or np.minimum) over a ``size`` x ``size`` window along the last two axes; the
    result loses ``size - 1`` pixels in each of them (valid windows only)."""
    return _running(_running(a, size, fn, -1), size, fn, -2)


def _tile_boxes(gray: np.ndarray, tile: int, max_tiles: int, min_contrast: float) -> list[tuple[int, int]]:
    """Top-left corners (x, y) in ``gray`` of its ``max_tiles`` highest-contrast ``tile`` tiles (a margin of
    ``tile * _MARGIN / TILE`` kept free around each), highest first."""
    m = int(np.ceil(tile * _MARGIN / TILE))
    core = gray[m : gray.shape[0] - m, m : gray.shape[1] - m]
    if min(core.shape) < tile:
        return []
    spread = tile_range(core, tile).reshape(-1)
    n_cols = core.shape[1] // tile
    order = np.argsort(-spread, kind="stable")[:max_tiles]
    order = order[spread[order] >= min_contrast]
    return [(m + (i % n_cols) * tile, m + (i // n_cols) * tile) for i in order.tolist()]


def sample_tiles(gray: np.ndarray, max_tiles: int = 64, min_contrast: float = 40.0) -> np.ndarray:
    """The ``max_tiles`` highest-contrast ``TILE`` tiles of ``gray`` (at the detail level) with a margin of context
    around each, as a stack (K, TILE + 2 * margin, same): a bounded sample where the edges are.

    uint8 gray levels (the detail level of a view) stay bytes, ranked and returned as such; anything else is
    float32."""
    g = np.asarray(gray)
    if g.dtype != np.uint8:
        g = g.astype(np.float32, copy=False)
    side = TILE + 2 * _MARGIN
    boxes = _tile_boxes(g, TILE, max_tiles, min_contrast)
    if not boxes:
        return np.zeros((0, side, side), np.float32)
    corners = np.array(boxes) - _MARGIN
    # each tile with its margin is one window of a sliding view: a block copy per tile, no per-pixel index
    return np.lib.stride_tricks.sliding_window_view(g, (side, side))[corners[:, 1], corners[:, 0]]


def detail_gray(view: Any) -> np.ndarray:
    """The view's gray at the detail level (long side <= DETAIL_SIZE, never upscaled) as uint8 gray levels: the
    loader's ``view.detail``; ``view.gray`` for views without one."""
    detail = getattr(view, "detail", None)
    if detail is None:
        return np.asarray(view.gray)
    return np.asarray(detail, dtype=np.uint8)


def sharpness_profile(
    tiles: np.ndarray,
    min_contrast: float = 40.0,
    percentile: float = 99.0,
    min_pixels: int = 40,
    window: int = WINDOW,
    min_ratio: float = 0.18,
) -> tuple[list[float | None], float | None]:
    """Per gradient orientation (bin ``k`` covers ``k * 22.5`` +- 11.25 degrees, 0 = a horizontal gradient, i.e.
    vertical edges; counter-clockwise), the ``percentile`` of gradient / local range over its edge pixels, 0..1.

    Edge pixels are those whose window spans ``min_contrast`` grey levels and whose own gradient is at least
    ``min_ratio`` of that (a ramp 2 / min_ratio pixels wide still counts; a flat pixel beside an edge of another
    orientation does not). ``None`` for a bin with fewer than ``min_pixels`` of them (an orientation the picture does
    not have).

    Second, over every pixel whose window spans ``min_contrast`` (any orientation, no ``min_ratio``), the same
    percentile: how steep the steepest edges are anywhere, which still speaks when blur has left too few steep edges
    to tell orientations apart; ``None`` under ``4 * min_pixels`` such pixels.
    """
    if tiles.shape[0] == 0:
        return [None] * N_BINS, None
    if tiles.dtype == np.uint8:
        ratio, index = _edge_ratios_bytes(tiles, min_contrast, window)
    else:
        c = window // 2
        t = np.asarray(tiles, dtype=np.float32)
        gx = (t[:, 1:-1, 2:] - t[:, 1:-1, :-2]) * 0.5
        gy = (t[:, :-2, 1:-1] - t[:, 2:, 1:-1]) * 0.5  # rows grow downwards: up is positive
        inner = t[:, 1:-1, 1:-1]
        spread = _window_extreme(inner, window, np.maximum) - _window_extreme(inner, window, np.minimum)
        gx, gy = gx[:, c:-c, c:-c], gy[:, c:-c, c:-c]
        spread = spread[:, : gx.shape[1], : gx.shape[2]]
        edges = spread >= min_contrast
        gx, gy, spread = gx[edges], gy[edges], spread[edges]
        mag, bins = _magnitude_and_bin(gx, gy)
        ratio = np.minimum(mag / spread, 1.0)
    anywhere = _percentile(ratio, percentile) if ratio.size >= 4 * min_pixels else None
    keep = ratio >= min_ratio
    if tiles.dtype == np.uint8:
        ratio, bins = ratio[keep], _gradient_tables()[1][index[keep]]
    else:
        ratio, bins = ratio[keep], bins[keep]
    # grouped by bin once (a stable radix sort of bytes), then each bin's run is one slice
    ratio = ratio[np.argsort(bins, kind="stable")]
    ends = np.cumsum(np.bincount(bins, minlength=N_BINS)).tolist()
    out: list[float | None] = []
    for k in range(N_BINS):
        values = ratio[(ends[k - 1] if k else 0) : ends[k]]
        out.append(_percentile(values, percentile) if values.size >= min_pixels else None)
    return out, anywhere


def _magnitude_and_bin(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twice the gradient magnitude (a one-pixel step gives 1 on both of its pixels, against the local range) and
    the orientation bin (rounded to the nearest: truncation is the floor here, the angle is not negative), float32
    gradients in."""
    mag = 2.0 * np.sqrt(gx * gx + gy * gy)
    angle = np.arctan2(gy, gx) % np.pi
    return mag, (angle / np.float32(np.pi / N_BINS) + np.float32(0.5)).astype(np.uint8) % N_BINS


@functools.cache
def _gradient_tables() -> tuple[np.ndarray, np.ndarray]:
    """:func:`_magnitude_and_bin` of every gradient byte tiles can have (central differences of gray levels: halves
    from -127.5 to 127.5 each way), at index ``(2 gx + 255) * 511 + (2 gy + 255)``: the same float32 operations on
    the same values, computed once."""
    d = np.arange(-255, 256, dtype=np.float32) * np.float32(0.5)
    gx = np.repeat(d, d.size)
    gy = np.tile(d, d.size)
    return _magnitude_and_bin(gx, gy)


def _edge_ratios_bytes(tiles: np.ndarray, min_contrast: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The gradient / local range of the pixels of uint8 tiles whose window spans ``min_contrast``, and their index
    into :func:`_gradient_tables` (where their orientation bin is looked up): integer differences and window
    extremes, the magnitude looked up; equal to the float32 path."""
    c = window // 2
    inner = tiles[:, 1:-1, 1:-1]
    spread = _window_extreme(inner, window, np.maximum) - _window_extreme(inner, window, np.minimum)
    h, w = spread.shape[1], spread.shape[2]
    t = tiles.astype(np.int16)
    gx2 = t[:, 1 + c : 1 + c + h, 2 + c : 2 + c + w] - t[:, 1 + c : 1 + c + h, c : c + w]  # twice gx
    gy2 = t[:, c : c + h, 1 + c : 1 + c + w] - t[:, 2 + c : 2 + c + h, 1 + c : 1 + c + w]  # up is positive
    edges = spread >= min_contrast
    index = (gx2[edges].astype(np.int32) + 255) * 511 + (gy2[edges] + 255)
    ratio = np.minimum(_gradient_tables()[0][index] / spread[edges].astype(np.float32), 1.0)
    return ratio, index


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) through one partition, without its per-call cost."""
    pos = q / 100.0 * (values.size - 1)
    lo = int(pos)
    hi = min(lo + 1, values.size - 1)
    part = np.partition(values, [lo, hi])
    a, b = float(part[lo]), float(part[hi])
    t = pos - lo
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


def blur_measures(per_bin: list[float | None]) -> dict[str, Any]:
    """The summary of the per-orientation values.

    - ``sharpness_best``: the sharpest orientation (the defocus measure);
    - ``sharpness_worst``: the sharpness across the direction perpendicular to the sharpest orientation, as the
      softest of that bin and its two neighbours (the motion measure);
    - ``worst_angle``: that direction in degrees counter-clockwise from horizontal (where a motion smeared).

    Motion blur along a direction leaves the edges along it crisp (the sharpest orientation is perpendicular to the
    motion) and spreads the edges facing within about 45 degrees of it: the three bins around the motion go soft
    together. One soft bin beside sharp neighbours is an orientation with few, smooth edges (clouds, a soft
    background), not a smear.
    """
    present = [v for v in per_bin if v is not None]
    if len(present) < N_BINS // 2:
        return {"sharpness_best": None, "sharpness_worst": None, "worst_angle": None}
    best = max(present)
    half = N_BINS // 2

    def across(k: int) -> float | None:  # the softness around the direction perpendicular to bin k
        around = [per_bin[(k + half + d) % N_BINS] for d in (-1, 0, 1)]
        values = [v for v in around if v is not None]
        return max(values) if values else None

    # among orientations as sharp as the best (a crisp photo saturates several), the one whose perpendicular is softest
    options = [
        (value, k)
        for k, v in enumerate(per_bin)
        if v is not None and v >= best - 0.02 and (value := across(k)) is not None
    ]
    if not options:
        return {"sharpness_best": round(best, 4), "sharpness_worst": None, "worst_angle": None}
    worst, k = min(options)
    return {
        "sharpness_best": round(best, 4),
        "sharpness_worst": round(worst, 4),
        "worst_angle": round(((k + half) % N_BINS) * 180.0 / N_BINS, 1),
    }


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (higher is sharper; depends on texture and contrast)."""
    g = np.asarray(gray)
    if min(g.shape) < 3:
        return 0.0
    if g.dtype != np.uint8:
        g = g.astype(np.float32, copy=False)
        lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
        return float(lap.var())
    # gray levels (a view's gray): the Laplacian in exact int16, its variance from exact integer sums
    g = g.astype(np.int16)
    lap = g[1:-1, :-2] + g[1:-1, 2:]
    lap += g[:-2, 1:-1]
    lap += g[2:, 1:-1]
    lap -= 4 * g[1:-1, 1:-1]
    n = lap.size
    total = int(lap.sum(dtype=np.int64))
    squares = int(np.square(lap, dtype=np.int32).sum(dtype=np.int64))
    return (squares * n - total * total) / (n * n)


class BlurCheck(ImageCheck):
    """Flags defocused and motion-blurred images, in absolute terms and compared with the rest of the dataset.

    Example::

        m = BlurCheck().measure(view, BlurCheck.defaults)
        m["sharpness_best"], m["sharpness_worst"], m["worst_angle"]   # 0.93, 0.21, 45.0: motion blur at 45 degrees
    """

    name = "blurry"
    codes = ("blurry",)
    version = 4
    defaults: ClassVar[dict[str, Any]] = {
        "max_tiles": 64,  # highest-contrast 32 px tiles of the detail level measured (bounded cost; 64 and 128
        # give the same recall on bench/blur_variants.py)
        # calibrated by bench/blur_variants.py (bench_dev photos at 1024 px: disk radius 2-8, motion 7-31 px, sharp
        # and shallow-depth-of-field negatives): crisp photos score 0.8-1, defocus r >= 2 under 0.64
        "defocus_threshold": 0.64,  # sharpness_best below this: out of focus
        "motion_threshold": 0.57,  # sharpness_worst below this with ...
        "motion_anisotropy": 0.65,  # ... worst / best at most this: motion blur along worst_angle
        # with too few steep edges to compare orientations (strong defocus or a long smear): sharpness_any below
        # this (edges spread over more than about 4 px at 1024 px); crisp photos with few edges score 0.56-0.62
        "no_crisp_edges_threshold": 0.45,
        "strong_factor": 0.7,  # below this fraction of its threshold the finding is an error
        "relative_factor": 0.85,  # and the measure must be below this fraction of the dataset median
        "min_images_for_median": 8,  # with fewer images the relative test is skipped
    }

    def measure(self, view: Any, params: dict[str, Any]) -> Metrics:
        """Per-orientation sharpness of the detail level's high-contrast tiles, its summary and ``laplacian_var``."""
        per_bin, anywhere = sharpness_profile(sample_tiles(detail_gray(view), int(params["max_tiles"])))
        return {
            "sharpness_by_angle": [None if v is None else round(v, 4) for v in per_bin],
            **blur_measures(per_bin),
            "sharpness_any": None if anywhere is None else round(anywhere, 4),
            "laplacian_var": round(laplacian_variance(view.gray), 2),
        }

    def judge(self, record: Any, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """A ``blurry`` finding, defocus first (it is the stronger statement), else motion; with too few steep edges
        to tell orientations apart, from the steepest edges anywhere."""
        m = record.metrics
        best, worst, anywhere = m.get("sharpness_best"), m.get("sharpness_worst"), m.get("sharpness_any")
        if not isinstance(best, int | float):
            if not isinstance(anywhere, int | float):
                return []
            limit = _limit(context, params, "sharpness_any", float(params["no_crisp_edges_threshold"]))
            return (
                [self._finding(record, params, "no_crisp_edges", anywhere, limit, context)]
                if anywhere < limit
                else []
            )
        defocus_limit = _limit(context, params, "sharpness_best", float(params["defocus_threshold"]))
        if best < defocus_limit:
            return [self._finding(record, params, "defocus", best, defocus_limit, context)]
        if not isinstance(worst, int | float):
            return []
        motion_limit = _limit(context, params, "sharpness_worst", float(params["motion_threshold"]))
        if worst < motion_limit and worst <= float(params["motion_anisotropy"]) * best:
            return [self._finding(record, params, "motion", worst, motion_limit, context)]
        return []

    def _finding(
        self,
        record: Any,
        params: dict[str, Any],
        kind: str,
        value: float,
        limit: float,
        context: CheckContext,
    ) -> Finding:
        m = record.metrics
        metric = _KIND_METRIC[kind]
        median = _dataset_median(context, params, metric)
        evidence: dict[str, Any] = {
            "metric": metric,
            "kind": kind,
            metric: value,
            "threshold": round(limit, 4),
            "absolute_threshold": params[f"{kind}_threshold"],
            "dataset_median": None if median is None else round(median, 4),
            "sharpness_best": m.get("sharpness_best"),
            "sharpness_worst": m.get("sharpness_worst"),
            "sharpness_any": m.get("sharpness_any"),
            "sharpness_by_angle": m.get("sharpness_by_angle"),
            "laplacian_var": m.get("laplacian_var"),
        }
        against = f"; dataset median {median:.2f})" if median is not None else ")"
        if kind == "defocus":
            message = (
                f"Out of focus: even its sharpest edges are soft in every direction ({metric} {value:.2f}"
            )
        elif kind == "no_crisp_edges":
            message = f"Blurred throughout: no crisp edge in any direction ({metric} {value:.2f}"
        else:
            angle = float(m.get("worst_angle") or 0.0)
            evidence["direction_deg"] = angle
            message = (
                f"Motion blur along {angle:g} degrees: edges across that direction are smeared while the others are "
                f"crisp ({metric} {value:.2f} vs best {m.get('sharpness_best', 0):.2f}"
            )
        message += f" < {limit:.2f}{against}"
        strong = value < float(params["strong_factor"]) * limit
        return Finding(
            "blurry", Severity.ERROR if strong else Severity.WARNING, message, evidence, record.item.rel
        )


#: The metric each kind of blur finding is judged on.
_KIND_METRIC = {"defocus": "sharpness_best", "motion": "sharpness_worst", "no_crisp_edges": "sharpness_any"}


def _limit(context: CheckContext, params: dict[str, Any], metric: str, absolute: float) -> float:
    median = _dataset_median(context, params, metric)
    return absolute if median is None else min(absolute, median * float(params["relative_factor"]))


def _dataset_median(context: CheckContext, params: dict[str, Any], metric: str) -> float | None:
    key = f"blurry.median.{metric}"
    if key not in context.cache:
        values = context.metric_values(metric)
        enough = len(values) >= int(params["min_images_for_median"])
        context.cache[key] = float(np.median(values)) if enough else None
    return context.cache[key]


CHECKS = [BlurCheck()]
