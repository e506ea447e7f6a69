"""Which copy of a duplicate group to keep: one small function so the rule lives in one place.

Example::

    keeper = choose_keeper(group)  # group: list[ItemRecord]
"""

from __future__ import annotations

from curator.results import ItemRecord


def choose_keeper(records: list[ItemRecord]) -> ItemRecord:
    """The record to keep among duplicates: a training image over a regularization one, then the most pixels,
    then the largest file, then the first path (stable)."""

    def rank(record: ItemRecord) -> tuple[int, int, int, str]:
        size = int(record.metrics.get("file_size", 0) or 0)
        return (0 if not record.item.is_reg else 1, -(record.width * record.height), -size, record.item.rel)

    return min(records, key=rank)
