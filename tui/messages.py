"""Messages the workers and panels post: small dataclasses. Progress messages may flood, so they replace each other.

Workers run in threads and talk back only through these (``App.post_message`` is thread safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from curator.scan.results import ScanResult


@dataclass
class ScanProgress(Message):
    """A scan worker advanced: ``done`` of ``total`` images."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScanProgress)


@dataclass
class ScanFinished(Message):
    """A scan worker finished with ``result``."""

    result: ScanResult


@dataclass
class TagCounts(Message):
    """Tag frequencies counted by a worker: (tag as written most often, captions holding it), most frequent first."""

    counts: list[tuple[str, int]]


@dataclass
class JobFailed(Message):
    """A worker failed with an expected error: one line for the user (the one place errors are shown)."""

    job: str
    message: str


@dataclass
class DecisionsChanged(Message):
    """Decisions of ``rels`` changed (set, bulk, undo): panels refresh those rows."""

    rels: list[str]


@dataclass
class ExportFinished(Message):
    """Export wrote ``out``; ``config`` is the trainer config it wrote (None when it wrote none)."""

    out: Path
    config: Path | None
    summary: str


@dataclass
class TrainEvents(Message):
    """New JSON-lines events of the training subprocess (``step``, ``loss``, ``sample``, ``end``, ``error``...).

    The tailing worker sends every line read in one poll as one message, so no loss value is ever dropped; it also
    decodes the newest sample image among them off the UI thread (``sample``, None when there is none).
    """

    events: list[dict[str, Any]]
    sample: Any = None  # PIL image of the newest ``sample`` event's file


@dataclass
class TrainExited(Message):
    """The training subprocess ended with ``returncode`` (negative when it was terminated)."""

    returncode: int
    cancelled: bool
