"""Which copy of a duplicate group to keep: the rule lives in one place, shared by exact and near duplicates.

Example::

    keeper = choose_keeper(group)       # group: list[ItemRecord]
    ranked = rank_for_keeping(group)    # best to keep first
"""

from __future__ import annotations

from typing import Any

from curator.scan.results import ItemRecord

#: Findings that make a copy a worse training image (each one lowers its rank).
QUALITY_CODES = ("screenshot", "blurry", "jpeg_low_quality", "jpeg_artifacts", "too_small")


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def keep_key(record: ItemRecord) -> tuple[Any, ...]:
    """Sort key, smaller is better: a training image over a regularization one, not a screenshot, fewer quality
    findings, more pixels, higher JPEG quality, sharper, larger file, then the path (stable)."""
    codes = {f.code for f in record.findings}
    m = record.metrics
    screenshot = "screenshot" in codes or bool(m.get("screenshot_metadata") or m.get("screenshot_filename"))
    problems = sum(code in codes for code in QUALITY_CODES)
    return (
        1 if record.item.is_reg else 0,
        screenshot,
        problems,
        -(record.width * record.height),
        -_number(m.get("jpeg_quality"), 100.0),
        -round(_number(m.get("sharpness_best"), 1.0), 2),
        -int(_number(m.get("file_size"), 0.0)),
        record.item.rel,
    )


def rank_for_keeping(records: list[ItemRecord]) -> list[ItemRecord]:
    """The records of one group, best to keep first."""
    return sorted(records, key=keep_key)


def choose_keeper(records: list[ItemRecord]) -> ItemRecord:
    """The record to keep among duplicates (see :func:`keep_key`)."""
    if not records:
        raise ValueError("choose_keeper needs at least one record")
    return rank_for_keeping(records)[0]
