"""Which copy of a duplicate group to keep: the rule lives in one place, shared by exact and near duplicates.

The keeper is the least-processed original. Each member is compared with the rest of its group (:func:`traits`):
is it the mirrored one, a crop of another, a downscaled copy, re-encoded at a lower JPEG quality, brightness-shifted
against the group? The member with the fewest such marks wins, then the larger, the higher JPEG quality, the
sharper, the larger file. Screenshots, quality findings and regularization images lose before any of that.

Example::

    keeper = choose_keeper(group)       # group: list[ItemRecord]
    ranked = rank_for_keeping(group)    # best to keep first
    why = keeper_reason(group)          # 'a.jpg kept, no sign of mirroring, ..., 768x768, JPEG q95; b.jpg: mirrored'
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from curator.scan.results import ItemRecord

#: Findings that make a copy a worse training image (each one lowers its rank).
QUALITY_CODES = ("screenshot", "blurry", "jpeg_low_quality", "jpeg_artifacts", "too_small")
#: Hash distance (pHash + dHash bits) a variant must win by before it counts as evidence (hashes are noisy), and the
#: most it may be to count as a match at all (the near-duplicate search's own limits are 7 + 16).
HASH_MARGIN = 6
HASH_MATCH = 20
#: A member with fewer pixels than this share of the group's largest is a downscaled copy.
DOWNSCALED = 0.9
#: JPEG quality this far under the group's best is a re-encode at lower quality (copies are often saved at a
#: slightly higher setting than the original was, which restores nothing).
QUALITY_GAP = 15
#: Mean luma farther than both of these (levels of 255, share of the group median) from the group median is a
#: re-tone. Re-encodes and resizes move it by under 0.2 levels; brightness x0.92 on mostly white clipart by about 1 %.
LUMA_LEVELS = 0.75
LUMA_SHARE = 0.0075


@dataclass
class Traits:
    """What one member of a group looks like against the others (the keeper rule's evidence)."""

    rel: str
    marks: list[str] = field(
        default_factory=list
    )  # 'mirrored', 'cropped', 'downscaled', 'JPEG q60', 'brightness +8%'
    pixels: int = 0
    quality: float | None = None  # JPEG quality (None: not a JPEG)
    sharpness: float = 0.0
    file_size: int = 0
    brightness: float | None = (
        None  # mean luma relative to the group median (1.0 = the same), None when unknown
    )


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _bits(a: Any, b: Any) -> int | None:
    """Hamming distance of two hex hashes (None when either is missing)."""
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _distance(x: dict[str, Any], y: dict[str, Any], variant: str) -> int | None:
    """pHash + dHash distance of ``variant`` of ``x`` to plain ``y``."""
    p = _bits(x.get(f"phash{variant}"), y.get("phash"))
    d = _bits(x.get(f"dhash{variant}"), y.get("dhash"))
    return None if p is None or d is None else p + d


def _wins(x: dict[str, Any], y: dict[str, Any], variant: str, baseline: str = "") -> bool:
    """True when ``variant`` of x matches plain y clearly better than the ``baseline`` variant of x does."""
    plain, other = _distance(x, y, baseline), _distance(x, y, variant)
    return plain is not None and other is not None and other <= HASH_MATCH and other + HASH_MARGIN <= plain


def _mirrored(i: int, metrics: list[dict[str, Any]]) -> bool:
    """Member i is flipped against more members than it is not (the minority orientation)."""
    flipped = sum(_wins(metrics[i], m, "_mirror") for j, m in enumerate(metrics) if j != i)
    return flipped * 2 > len(metrics) - 1


def _cropped(i: int, metrics: list[dict[str, Any]]) -> bool:
    """Member i matches another member's centre crop better than that member itself, and not the other way."""
    x = metrics[i]
    for j, y in enumerate(metrics):
        if j == i:
            continue
        for v, baseline in (("_crop", ""), ("_crop_mirror", "_mirror")):
            if _wins(y, x, v, baseline) and not _wins(x, y, v, baseline):
                return True
    return False


def traits(records: list[ItemRecord]) -> dict[str, Traits]:
    """Each member's :class:`Traits` against the rest of ``records`` (one duplicate group)."""
    metrics = [r.metrics for r in records]
    biggest = max((r.width * r.height for r in records), default=0)
    qualities = [_number(m.get("jpeg_quality"), -1.0) for m in metrics]
    best_quality = max(qualities, default=-1.0)
    lumas = [m.get("mean_luma") for m in metrics]
    known = [float(v) for v in lumas if isinstance(v, int | float)]
    # with two members the median sits halfway: both would look re-toned, so brightness tells nothing
    median = statistics.median(known) if len(known) == len(records) and len(known) > 2 else None
    out: dict[str, Traits] = {}
    for i, record in enumerate(records):
        t = Traits(
            record.item.rel,
            pixels=record.width * record.height,
            quality=qualities[i] if qualities[i] >= 0 else None,
            sharpness=round(
                _number(metrics[i].get("sharpness_best", metrics[i].get("edge_sharpness")), 1.0), 2
            ),
            file_size=int(_number(metrics[i].get("file_size"), 0.0)),
        )
        if len(records) > 1:
            _mark(t, i, records, metrics, biggest, best_quality, median)
        out[record.item.rel] = t
    return out


def _mark(
    t: Traits,
    i: int,
    records: list[ItemRecord],
    metrics: list[dict[str, Any]],
    biggest: int,
    best_quality: float,
    median: float | None,
) -> None:
    """Fill the processing marks of member i."""
    if _mirrored(i, metrics):
        t.marks.append("mirrored")
    if _cropped(i, metrics):
        t.marks.append("cropped")
    if t.pixels < DOWNSCALED * biggest:
        t.marks.append("downscaled")
    if t.quality is not None and t.quality < best_quality - QUALITY_GAP:
        t.marks.append(f"JPEG q{t.quality:.0f}")
    if median is not None and median > 0:
        luma = float(metrics[i]["mean_luma"])
        t.brightness = luma / median
        if abs(luma - median) > max(LUMA_LEVELS, LUMA_SHARE * median):
            t.marks.append(f"brightness {t.brightness - 1:+.0%}")


def _key(record: ItemRecord, t: Traits) -> tuple[Any, ...]:
    codes = {f.code for f in record.findings}
    m = record.metrics
    screenshot = "screenshot" in codes or bool(m.get("screenshot_metadata") or m.get("screenshot_filename"))
    problems = sum(code in codes for code in QUALITY_CODES)
    return (
        1 if record.item.is_reg else 0,
        screenshot,
        problems,
        len(t.marks),
        -t.pixels,
        -(t.quality if t.quality is not None else 100.0),
        -t.sharpness,
        -t.file_size,
        record.item.rel,
    )


def rank_for_keeping(records: list[ItemRecord]) -> list[ItemRecord]:
    """The records of one group, best to keep first: a training image over a regularization one, not a screenshot,
    fewer quality findings, fewer processing marks (see :func:`traits`), more pixels, higher JPEG quality, sharper,
    larger file, then the path (stable)."""
    found = traits(records)
    return sorted(records, key=lambda r: _key(r, found[r.item.rel]))


def choose_keeper(records: list[ItemRecord]) -> ItemRecord:
    """The record to keep among duplicates (see :func:`rank_for_keeping`)."""
    if not records:
        raise ValueError("choose_keeper needs at least one record")
    return rank_for_keeping(records)[0]


def describe(t: Traits) -> str:
    """One line of what tells a member apart: its marks, or 'untouched' when it has none."""
    return ", ".join(t.marks) if t.marks else "no sign of editing"


def keeper_reason(records: list[ItemRecord], others: bool = True) -> str:
    """Why the keeper of ``records`` won, in one line (for the finding's evidence and the review cards); with
    ``others`` also what marks each other member."""
    keeper = choose_keeper(records)
    found = traits(records)
    t = found[keeper.item.rel]
    parts = [
        f"{_name(keeper)} kept",
        describe(t) if t.marks else "no sign of mirroring, cropping, re-encoding or re-toning",
    ]
    parts.append(f"{keeper.width}x{keeper.height}")
    if t.quality is not None:
        parts.append(f"JPEG q{t.quality:.0f}")
    rest = (
        [f"{_name(r)}: {describe(found[r.item.rel])}" for r in records if r is not keeper] if others else []
    )
    return "; ".join([", ".join(parts), *rest])


def _name(record: ItemRecord) -> str:
    return record.item.rel.rsplit("/", 1)[-1]
