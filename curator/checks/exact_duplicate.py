"""Exact duplicates: the same file bytes, or the same decoded pixels in a different file.

Code: ``exact_duplicate``. The keeper is chosen by :func:`curator.checks.keeper.choose_keeper`; every other copy gets a
warning with ``evidence={"keeper": rel, "match": "bytes" | "pixels"}``.

Pixel identity is two-stage: files whose cheap ``pixel_fingerprint`` (measured in the scan) matches another's, with
other bytes, are decoded again here and compared by the SHA-256 of their full-resolution pixels; only those few
files pay for it (one of each set of byte-identical copies). The
confirmed groups are left in ``context.cache[PIXEL_GROUPS]`` for the near-duplicate check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curator.checks.base import CheckContext, DatasetCheck
from curator.checks.keeper import choose_keeper
from curator.findings import Finding, Severity
from curator.images.loader import pixel_digest
from curator.scan.results import ItemRecord

#: context.cache key: rel -> full-resolution pixel digest, for every file whose fingerprint matched another's.
PIXEL_GROUPS = "exact_duplicate.pixel_digest"


def _groups(records: list[ItemRecord], key: Callable[[ItemRecord], str | None]) -> list[list[ItemRecord]]:
    by_value: dict[str, list[ItemRecord]] = {}
    for record in records:
        value = key(record)
        if value:
            by_value.setdefault(value, []).append(record)
    return [group for group in by_value.values() if len(group) > 1]


def confirmed_pixel_digests(records: list[ItemRecord], context: CheckContext) -> dict[str, str]:
    """rel -> full-resolution pixel digest for the decoded records that share a fingerprint with a file of other
    bytes (computed once). Files of the same bytes have the same pixels: one of them is decoded, and a group whose
    files all have the same bytes is none of this stage's business (the bytes already match)."""
    if PIXEL_GROUPS not in context.cache:
        digests: dict[str, str] = {}
        for group in _groups(records, lambda r: r.metrics.get("pixel_fingerprint")):
            by_bytes: dict[Any, list[ItemRecord]] = {}
            for record in group:
                by_bytes.setdefault(record.metrics.get("sha256") or id(record), []).append(record)
            if len(by_bytes) < 2:
                continue
            for same in by_bytes.values():
                digest = pixel_digest(same[0].item.path)
                if digest:
                    digests.update(dict.fromkeys((r.item.rel for r in same), digest))
        context.cache[PIXEL_GROUPS] = digests
    return context.cache[PIXEL_GROUPS]


class ExactDuplicate(DatasetCheck):
    """Byte-identical files first, then pixel-identical ones among the rest."""

    name = "exact_duplicate"
    codes = ("exact_duplicate",)

    def run(self, records: list[ItemRecord], params: dict[str, Any], context: CheckContext) -> list[Finding]:
        decoded = [r for r in records if r.decoded]
        digests = confirmed_pixel_digests(decoded, context)
        keys: dict[str, Callable[[ItemRecord], str | None]] = {
            "bytes": lambda r: r.metrics.get("sha256"),
            "pixels": lambda r: digests.get(r.item.rel),
        }
        findings: list[Finding] = []
        flagged: set[str] = set()
        for match, key in keys.items():
            candidates = [r for r in decoded if r.item.rel not in flagged]
            for group in _groups(candidates, key):
                keeper = choose_keeper(group)
                for record in group:
                    if record is keeper:
                        continue
                    flagged.add(record.item.rel)
                    what = "file" if match == "bytes" else "image (same pixels, different file)"
                    findings.append(
                        Finding(
                            "exact_duplicate",
                            Severity.WARNING,
                            f"Same {what} as {keeper.item.rel}: it trains twice as hard",
                            {"keeper": keeper.item.rel, "match": match, "group_size": len(group)},
                            record.item.rel,
                        )
                    )
        return findings


CHECKS = [ExactDuplicate()]
