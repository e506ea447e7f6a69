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

import numpy as np

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


#: The variants the rule compares (``near_duplicate.VARIANTS``: plain, mirror, centre crop, crop mirrored).
_VARIANTS = ("", "_mirror", "_crop", "_crop_mirror")


def _hash_array(metrics: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The hex hashes ``key`` of every member as uint64, and which members have one."""
    values = [m.get(key) for m in metrics]
    have = np.array([isinstance(v, str) for v in values], dtype=bool)
    parsed = np.array([int(v, 16) if isinstance(v, str) else 0 for v in values], dtype=np.uint64)
    return parsed, have


class _Distances:
    """pHash + dHash distances of every member's variants to every member's plain hashes, one matrix per variant
    (``[i, j]``: that variant of i against plain j; -1 where a hash is missing), computed once per group."""

    def __init__(self, metrics: list[dict[str, Any]]) -> None:
        plain_p, have_p = _hash_array(metrics, "phash")
        plain_d, have_d = _hash_array(metrics, "dhash")
        self._by_variant: dict[str, np.ndarray] = {}
        for v in _VARIANTS:
            vp, hp = _hash_array(metrics, f"phash{v}")
            vd, hd = _hash_array(metrics, f"dhash{v}")
            dist = np.bitwise_count(vp[:, None] ^ plain_p[None, :]).astype(np.int64)
            dist += np.bitwise_count(vd[:, None] ^ plain_d[None, :])
            known = (hp & hd)[:, None] & (have_p & have_d)[None, :]
            self._by_variant[v] = np.where(known, dist, -1)

    def wins(self, variant: str, baseline: str = "") -> np.ndarray:
        """``[i, j]``: ``variant`` of i matches plain j clearly better than the ``baseline`` variant of i does."""
        plain, other = self._by_variant[baseline], self._by_variant[variant]
        return (plain >= 0) & (other >= 0) & (other <= HASH_MATCH) & (other + HASH_MARGIN <= plain)


def _mirrored(distances: _Distances) -> np.ndarray:
    """Per member: flipped against more members than it is not (the minority orientation). Of two members each is
    flipped against the other and neither is the minority: a pair says nothing about which one was mirrored."""
    flipped = distances.wins("_mirror")
    np.fill_diagonal(flipped, False)
    if flipped.shape[0] < 3:
        return np.zeros(flipped.shape[0], dtype=bool)
    return flipped.sum(axis=1) * 2 > flipped.shape[0] - 1


def _cropped(distances: _Distances) -> np.ndarray:
    """Per member i: it matches another member's centre crop better than that member itself, and not the other way."""
    out = np.zeros(0, dtype=bool)
    for v, baseline in (("_crop", ""), ("_crop_mirror", "_mirror")):
        w = distances.wins(v, baseline)  # [y, x]: y's crop matches x
        one_way = w.T & ~w  # [i, j]: j's crop matches i, and i's crop does not match j
        np.fill_diagonal(one_way, False)
        hit = one_way.any(axis=1)
        out = hit if out.size == 0 else out | hit
    return out


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
    if len(records) > 1:
        distances = _Distances(metrics)
        mirrored, cropped = _mirrored(distances), _cropped(distances)
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
            _mark(t, i, metrics, bool(mirrored[i]), bool(cropped[i]), biggest, best_quality, median)
        out[record.item.rel] = t
    return out


def _mark(
    t: Traits,
    i: int,
    metrics: list[dict[str, Any]],
    mirrored: bool,
    cropped: bool,
    biggest: int,
    best_quality: float,
    median: float | None,
) -> None:
    """Fill the processing marks of member i."""
    if mirrored:
        t.marks.append("mirrored")
    if cropped:
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


def rank_for_keeping(records: list[ItemRecord], found: dict[str, Traits] | None = None) -> list[ItemRecord]:
    """The records of one group, best to keep first: a training image over a regularization one, not a screenshot,
    fewer quality findings, fewer processing marks (see :func:`traits`), more pixels, higher JPEG quality, sharper,
    larger file, then the path (stable). ``found``: the group's :func:`traits`, when the caller has them."""
    found = traits(records) if found is None else found
    return sorted(records, key=lambda r: _key(r, found[r.item.rel]))


def choose_keeper(records: list[ItemRecord], found: dict[str, Traits] | None = None) -> ItemRecord:
    """The record to keep among duplicates (see :func:`rank_for_keeping`)."""
    if not records:
        raise ValueError("choose_keeper needs at least one record")
    found = traits(records) if found is None else found
    return min(records, key=lambda r: _key(r, found[r.item.rel]))


def describe(t: Traits) -> str:
    """One line of what tells a member apart: its marks, or 'untouched' when it has none."""
    return ", ".join(t.marks) if t.marks else "no sign of editing"


def keeper_reason(
    records: list[ItemRecord], others: bool = True, found: dict[str, Traits] | None = None
) -> str:
    """Why the keeper of ``records`` won, in one line (for the finding's evidence and the review cards); with
    ``others`` also what marks each other member. ``found``: the group's :func:`traits`, when the caller has them."""
    if not records:
        raise ValueError("keeper_reason needs at least one record")
    found = traits(records) if found is None else found
    keeper = choose_keeper(records, found)
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
