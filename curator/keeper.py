"""Which copy of a duplicate cluster to keep: the largest, best-quality one that is not a screenshot.

Example::

    keeper = choose_keeper(records)          # one ItemRecord of the cluster
    ranked = rank_for_keeping(records)       # best first
"""

from __future__ import annotations

from typing import Any

#: Findings that make a copy a worse training image (their presence lowers its rank).
QUALITY_CODES = ("screenshot", "blurry", "jpeg_low_quality", "jpeg_artifacts", "too_small")


def keep_key(record: Any) -> tuple[Any, ...]:
    """Sort key, smaller is better: not a screenshot, fewer quality findings, more pixels, higher JPEG quality,
    sharper, then the path (stable)."""
    codes = {f.code for f in getattr(record, "findings", [])}
    m = record.metrics
    screenshot = "screenshot" in codes or bool(m.get("screenshot_metadata") or m.get("screenshot_filename"))
    problems = sum(code in codes for code in QUALITY_CODES)
    area = int(record.width) * int(record.height)
    quality = m.get("jpeg_quality")
    quality = 100 if not isinstance(quality, int | float) else quality
    blur = m.get("blur_effect")
    blur = 0.0 if not isinstance(blur, int | float) else blur
    return (screenshot, problems, -area, -quality, round(blur, 2), record.item.rel)


def rank_for_keeping(records: list[Any]) -> list[Any]:
    """The records of one cluster, best to keep first."""
    return sorted(records, key=keep_key)


def choose_keeper(records: list[Any]) -> Any:
    """The record to keep among duplicates (see :func:`keep_key`)."""
    if not records:
        raise ValueError("choose_keeper needs at least one record")
    return rank_for_keeping(records)[0]
