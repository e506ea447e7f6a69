"""``jpeg_low_quality`` and ``jpeg_artifacts``: heavy JPEG compression, from the file's tables or from its pixels.

- For JPEG files the encoder quality is estimated from the quantisation tables by matching them against the standard
  IJG (libjpeg) tables scaled for every quality 1..100. Tables that match no IJG quality exactly (cameras, Photoshop,
  custom encoders) still get the nearest equivalent quality, and the evidence says they are non-standard.
- For every format, a blockiness measure on the 8x8 grid of the native-resolution gray crop: the mean absolute
  difference across block boundaries compared with the differences inside blocks, at the best of the 8x8 possible
  grid offsets (so a few pixels of crop do not hide it). This catches JPEGs re-saved as PNG or WebP.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curator.checks.base import CheckContext, ImageCheck, Metrics
from curator.findings import Finding, Severity

# ITU-T T.81 Annex K tables (the IJG defaults), natural (row-major) order.
STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip
STD_CHROMA = np.full(64, 99, dtype=np.int64)
STD_CHROMA[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [
    17,
    18,
    24,
    47,
    18,
    21,
    26,
    66,
    24,
    26,
    56,
    47,
    66,
]

#: Clip for pixel differences in the blockiness measure: content edges must not drown the small block steps.
DIFF_CLIP = 12.0


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The table libjpeg writes for ``quality`` (1..100) from a base table (baseline, values 1..255)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((base * scale + 50) // 100, 1, 255)


_IJG_LUMA = np.stack([ijg_table(STD_LUMA, q) for q in range(1, 101)])
_IJG_CHROMA = np.stack([ijg_table(STD_CHROMA, q) for q in range(1, 101)])


def estimate_quality(tables: dict[int, list[int]] | dict[str, list[int]]) -> dict[str, Any]:
    """Nearest IJG quality of JPEG quantisation tables.

    Returns ``{"quality": int, "standard": bool, "error": float}``: ``standard`` is True when the tables equal libjpeg's
    for that quality exactly; ``error`` is the mean absolute difference per luminance coefficient of the best match.
    """
    items = sorted(((int(k), np.asarray(v, dtype=np.int64)) for k, v in tables.items()), key=lambda kv: kv[0])
    if not items or any(t.size != 64 for _, t in items):
        return {"quality": None, "standard": False, "error": None}
    # The luminance table decides the visible quality; the chrominance one only breaks ties and must match too for
    # the tables to count as standard.
    err_luma = np.abs(_IJG_LUMA - items[0][1]).mean(axis=1)
    err_chroma = np.abs(_IJG_CHROMA - items[1][1]).mean(axis=1) if len(items) > 1 else np.zeros(100)
    err = err_luma + 0.01 * err_chroma
    # On ties (clipped tables near q 100 or q 1) report the highest quality that fits: the kinder reading.
    best = int(np.flatnonzero(err == err.min()).max())
    standard = bool(err_luma[best] == 0 and err_chroma[best] == 0)
    return {"quality": best + 1, "standard": standard, "error": round(float(err_luma[best]), 3)}


def _phase_profile(gray: np.ndarray, axis: int) -> np.ndarray:
    """Mean clipped absolute difference between neighbours along ``axis``, folded by position modulo 8."""
    if gray.dtype == np.uint8:
        # gray levels stay bytes: |a - b| as max - min (no overflow), clipped in place, summed exactly as integers
        a, b = (gray[:, 1:], gray[:, :-1]) if axis == 1 else (gray[1:], gray[:-1])
        d = np.maximum(a, b)
        d -= np.minimum(a, b)
        np.minimum(d, np.uint8(DIFF_CLIP), out=d)
        line = d.sum(axis=1 - axis, dtype=np.uint32) / d.shape[1 - axis]
    else:
        d = np.minimum(np.abs(np.diff(gray, axis=axis)), DIFF_CLIP)
        line = d.mean(axis=1 - axis)  # one value per boundary position
    n = line.size // 8 * 8
    if n < 16:
        return np.zeros(8)
    return line[:n].reshape(-1, 8).mean(axis=0)


def blockiness(gray: np.ndarray | None) -> dict[str, Any]:
    """8x8 blockiness of a native-resolution gray image.

    For each axis, differences between neighbours are folded by position modulo 8; the strongest phase is the block
    boundary (its offset is reported), and the score is how much stronger it is than the median of the other seven
    phases, relative to them. Returns ``{"blockiness": float, "offset": [x, y]}``; 0 for images under 32 px.
    """
    if gray is None or min(gray.shape) < 32:
        return {"blockiness": 0.0, "offset": [0, 0]}
    g = np.asarray(gray)
    if g.dtype != np.uint8:
        g = g.astype(np.float32, copy=False)
    scores, offsets = [], []
    for axis in (1, 0):  # x (column boundaries), then y
        prof = _phase_profile(g, axis)
        phase = int(np.argmax(prof))
        others = np.delete(prof, phase)
        base = float(np.median(others))
        scores.append((float(prof[phase]) - base) / (base + 0.5))
        offsets.append((phase + 1) % 8)  # boundary between pixel phase and phase+1: grid starts at phase+1
    # both axes must show the grid: the weaker one bounds the score
    return {"blockiness": round(min(scores), 4), "offset": offsets}


class JpegCheck(ImageCheck):
    """Heavy JPEG compression: low quantisation quality (JPEG files) or a visible 8x8 block grid (any format).

    Example::

        JpegCheck().measure(view, JpegCheck.defaults)
        # {"jpeg_quality": 12, "jpeg_standard_tables": True, "jpeg_table_error": 0.0, "blockiness": 0.71, ...}
    """

    name = "jpeg"
    codes = ("jpeg_low_quality", "jpeg_artifacts")
    version = 1
    defaults: ClassVar[dict[str, Any]] = {
        "max_quality": 35,  # jpeg_low_quality fires at or below this estimated quality
        "error_quality": 15,  # ... and is an error at or below this one
        "blockiness_threshold": 0.4,  # jpeg_artifacts fires above this blockiness (PNG, WebP, ... files)
        # JPEG files carry their own grid (quality 60 measures up to ~0.9 on bench_dev): a re-compressed one must
        # show a grid clearly stronger than its own encoding explains
        "jpeg_file_blockiness_threshold": 1.0,
        "strong_blockiness": 1.2,  # ... and is an error above this one
    }

    def measure(self, view: Any, params: dict[str, Any]) -> Metrics:
        """Estimated JPEG quality (JPEG files only) and 8x8 blockiness of ``view.native_gray``."""
        metrics: Metrics = {}
        if view.quant_tables:
            est = estimate_quality(view.quant_tables)
            metrics.update(
                jpeg_quality=est["quality"],
                jpeg_standard_tables=est["standard"],
                jpeg_table_error=est["error"],
            )
        if view.native_gray is None or view.draft_scale > 1:
            # a reduced decode has no 8x8 grid left to measure; the tables above still tell a JPEG's quality
            metrics.update(blockiness=None, block_offset=None)
            return metrics
        blk = blockiness(view.native_gray)
        metrics.update(blockiness=blk["blockiness"], block_offset=blk["offset"])
        return metrics

    def judge(self, record: Any, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """``jpeg_low_quality`` from the tables; else ``jpeg_artifacts`` from the pixels (one finding per cause)."""
        m = record.metrics
        quality, blk = m.get("jpeg_quality"), m.get("blockiness")
        if isinstance(quality, int) and quality <= int(params["max_quality"]):
            tables = (
                "standard IJG tables" if m.get("jpeg_standard_tables") else "non-standard tables, nearest IJG"
            )
            evidence = {
                "metric": "jpeg_quality",
                "jpeg_quality": quality,
                "threshold": params["max_quality"],
                "standard_tables": m.get("jpeg_standard_tables"),
                "table_error": m.get("jpeg_table_error"),
                "blockiness": blk,
            }
            severity = Severity.ERROR if quality <= int(params["error_quality"]) else Severity.WARNING
            message = f"JPEG saved at low quality (~{quality}, {tables}; threshold {params['max_quality']})"
            return [Finding("jpeg_low_quality", severity, message, evidence, record.item.rel)]
        key = "jpeg_file_blockiness_threshold" if isinstance(quality, int) else "blockiness_threshold"
        limit = float(params[key])
        if isinstance(blk, int | float) and blk > limit:
            evidence = {
                "metric": "blockiness",
                "blockiness": blk,
                "threshold": limit,
                "grid_offset": m.get("block_offset"),
                "jpeg_quality": quality,
            }
            severity = Severity.ERROR if blk > float(params["strong_blockiness"]) else Severity.WARNING
            message = (
                f"Visible 8x8 JPEG block artifacts (blockiness {blk:.2f} > {params['blockiness_threshold']})"
            )
            return [Finding("jpeg_artifacts", severity, message, evidence, record.item.rel)]
        return []


CHECKS = [JpegCheck()]
