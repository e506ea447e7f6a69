"""The workspace: where dreamcurate keeps what it learns about a dataset (scan cache, review decisions, caption
edit journal). Default ``DATASET/.dreamcurate/``; ``--workspace DIR`` for read-only datasets. Never the images.

Example::

    ws = Workspace.for_dataset(Path("train"))
    ws.ensure()
    print(ws.cache_db)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curator.dataset.discover import WORKSPACE_DIRNAME


class WorkspaceError(OSError):
    """The workspace folder cannot be created or written; the message says which folder and what to do."""


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace folder."""

    root: Path

    @classmethod
    def for_dataset(cls, dataset_root: Path, workspace: Path | None = None) -> Workspace:
        """The workspace of ``dataset_root``: ``workspace`` when given, else ``dataset_root/.dreamcurate``."""
        return cls(Path(workspace) if workspace else Path(dataset_root) / WORKSPACE_DIRNAME)

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
