"""Exact duplicates: the same file bytes, or the same decoded pixels in a different file.

Code: ``exact_duplicate``. The keeper is chosen by :func:`curator.checks.keeper.choose_keeper`; every other copy gets a
warning with ``evidence={"keeper": rel, "match": "bytes" | "pixels"}``.
"""

from __future__ import annotations

from typing import Any

from curator.checks.base import CheckContext, DatasetCheck
from curator.checks.keeper import choose_keeper
from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord


def _groups(records: list[ItemRecord], key: str) -> list[list[ItemRecord]]:
    by_value: dict[str, list[ItemRecord]] = {}
    for record in records:
        value = record.metrics.get(key)
        if value:
            by_value.setdefault(value, []).append(record)
    return [group for group in by_value.values() if len(group) > 1]


class ExactDuplicate(DatasetCheck):
    """Byte-identical files first, then pixel-identical ones among the rest."""

    name = "exact_duplicate"
    codes = ("exact_duplicate",)

    def run(self, records: list[ItemRecord], params: dict[str, Any], context: CheckContext) -> list[Finding]:
        decoded = [r for r in records if r.decoded]
        findings: list[Finding] = []
        flagged: set[str] = set()
        for match, key in (("bytes", "sha256"), ("pixels", "pixel_sha256")):
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
