"""Plumbing for the long jobs the app runs in workers: following the trainer's JSON-lines event file.

Headless (no textual): the worker loops over :meth:`EventTail.poll` and posts what it returns.

Example::

    tail = EventTail(Path("out/events.jsonl"))
    for event in tail.poll():
        print(event["event"])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class EventTail:
    """Reads the complete new lines of a JSON-lines file on each :meth:`poll` (the file may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.partial = b""

    def poll(self) -> list[dict[str, Any]]:
        """Events appended since the last poll; a half-written last line waits for the next poll."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()  # b"" when the chunk ended with a newline
        events: list[dict[str, Any]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a corrupt line must not stop the progress display
            if isinstance(event, dict):
                events.append(event)
        return events


def last_line(path: Path | None, limit: int = 65536) -> str:
    """The last non-blank line of a log file (what a failed process said last), '' when there is none."""
    if path is None:
        return ""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""
