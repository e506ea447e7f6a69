"""The workspace: where dreamcurate keeps what it learns about a dataset (scan cache, review decisions, caption
edit journal). Default ``DATASET/.dreamcurate/``; ``--workspace DIR`` for read-only datasets. Never the images.

Example::

    ws = Workspace.for_dataset(Path("train"))
    ws.ensure()
    print(ws.cache_db)
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from curator.dataset.discover import WORKSPACE_DIRNAME

#: how long a writer waits for another one to finish before it gives up and names it
LOCK_WAIT_S = 10.0


class WorkspaceError(OSError):
    """The workspace folder cannot be created or written; the message says which folder and what to do."""


class WorkspaceBusy(WorkspaceError):
    """Another process holds the workspace's write lock (the message names it)."""


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace folder; ``dataset`` is the dataset it belongs to (journals hold paths relative
    to it)."""

    root: Path
    dataset: Path | None = None

    @classmethod
    def for_dataset(cls, dataset_root: Path, workspace: Path | None = None) -> Workspace:
        """The workspace of ``dataset_root``: ``workspace`` when given, else ``dataset_root/.dreamcurate``."""
        return cls(
            Path(workspace) if workspace else Path(dataset_root) / WORKSPACE_DIRNAME, Path(dataset_root)
        )

    @property
    def lock_file(self) -> Path:
        """The file every writer of captions, decisions or journals holds an ``flock`` on."""
        return self.root / "lock"

    @contextmanager
    def locked(self, wait_s: float | None = None) -> Iterator[None]:
        """Hold the workspace's write lock: one writer of captions, decisions and journals at a time. A second
        writer waits up to ``wait_s`` (default :data:`LOCK_WAIT_S`), then :class:`WorkspaceBusy` names the holder."""
        self.ensure()
        wait = LOCK_WAIT_S if wait_s is None else wait_s
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise WorkspaceBusy(
                            f"the workspace {self.root} is in use by {_holder(self.lock_file)}; "
                            "try again when it has finished"
                        ) from None
                    time.sleep(0.05)
            holder = {"pid": os.getpid(), "command": " ".join(sys.argv[:3])[:200], "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode("utf-8", "backslashreplace"), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def ensure(self) -> Workspace:
        """Create the folder if needed; returns self. Raises :class:`WorkspaceError` (an ``OSError``) with a
        one-line message naming the folder and the ``--workspace`` way out when that is impossible."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise WorkspaceError(
                f"cannot create the workspace {self.root} ({reason}); "
                "for a read-only dataset pass --workspace DIR"
            ) from exc
        return self

    @property
    def cache_db(self) -> Path:
        """SQLite cache of per-image metrics, keyed by (path, size, mtime, checks version)."""
        return self.root / "cache.sqlite"

    @property
    def decisions_db(self) -> Path:
        """SQLite store of review decisions (keep / drop, keeper choices, caption edits); export reads it."""
        return self.root / "decisions.sqlite"

    @property
    def review_prefs(self) -> Path:
        """What ``dreamcurate review`` remembers between sessions (plan-tab values, base model, export folder)."""
        return self.root / "review.json"

    @property
    def journal_dir(self) -> Path:
        """Undo journals of caption batch edits (``tags --apply``)."""
        return self.root / "journal"

    @property
    def suggestions_db(self) -> Path:
        """SQLite cache of what local taggers and captioners suggested per image (``dreamcurate caption``)."""
        return self.root / "suggestions.sqlite"


def _holder(lock_file: Path) -> str:
    """Who holds the lock, in words (the holder writes its pid and command into the file)."""
    try:
        data = json.loads(lock_file.read_text(encoding="utf-8"))
        pid, command = int(data["pid"]), str(data["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another dreamcurate process"
    from curator.textsafe import safe

    return f"process {pid} ({safe(command)})"
