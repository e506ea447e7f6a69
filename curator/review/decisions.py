"""Review decisions kept in the workspace (``Workspace.decisions_db``, SQLite): keep / drop per item with a reason,
the keeper of each duplicate cluster, and caption edits. The TUI writes them; ``export`` reads them. The user's
files are never touched here: a caption edit is only applied to the exported copy.

The store is an append-only log: every change is a row, the current state is the newest row per (kind, key) that
has not been undone, and ``undo()`` marks the newest batch of rows as undone. One ``batch()`` groups several changes
(a bulk drop by finding code) so that one undo reverts them together.

Example::

    store = DecisionStore(Workspace.for_dataset(Path("train")))
    store.set("10_cat/a.png", "drop", "blurry")
    store.set_caption("10_cat/b.png", "cat, sitting, sofa")
    with store.batch():
        for rel in ("10_cat/c.png", "10_cat/d.png"):
            store.set(rel, "drop", "screenshot")
    store.undo()                      # reverts both drops of the batch
    store.redo()                      # and applies them again
    store.get("10_cat/a.png").action  # 'drop'
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from curator.dataset.workspace import Workspace

ACTIONS = ("keep", "drop")
_KIND_ITEM = "item"
_KIND_CAPTION = "caption"
_KIND_KEEPER = "keeper"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL DEFAULT '',
    ts REAL NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS log_key ON log(kind, key, undone);
"""


@dataclass(frozen=True)
class Decision:
    """The current decision about one item: ``action`` is ``"keep"`` or ``"drop"``; ``ts`` is a Unix time."""

    rel: str
    action: str
    reason: str
    ts: float


@dataclass(frozen=True)
class Change:
    """One logged change (what :meth:`DecisionStore.undo` returns): kind is item, caption or keeper."""

    kind: str
    key: str
    value: str | None
    reason: str
    ts: float


def cluster_key(members: Iterable[str]) -> str:
    """A stable key for a duplicate cluster: a short hash of its members' sorted relative paths."""
    joined = "\n".join(sorted(set(members)))
    return hashlib.sha1(joined.encode("utf-8", "surrogateescape")).hexdigest()[:16]  # non-UTF-8 names too


class DecisionStoreError(OSError):
    """The decisions database cannot be opened; the message names the file and the way out."""


class DecisionStore:
    """Keep / drop decisions, keeper choices and caption edits of one dataset, stored in its workspace.

    Reading a store whose database does not exist yet returns nothing and creates nothing; the first write creates
    the workspace folder and the database. Each call opens its own connection, so the store is safe to use from
    worker threads and from several processes (SQLite locks the file).
    """

    def __init__(self, workspace: Workspace | Path) -> None:
        self.path = workspace.decisions_db if isinstance(workspace, Workspace) else Path(workspace)
        self._batch: int | None = None

    # -- connection ----------------------------------------------------------------------------------------------
    def _connect(self, write: bool) -> sqlite3.Connection | None:
        if not write and not self.path.exists():
            return None
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0)
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # not a database (damaged, or another file under that name)
            conn.close()
            raise DecisionStoreError(
                f"the review decisions in {self.path} cannot be read ({exc}); move that file away to start afresh"
            ) from exc
        return conn

    def _append(self, kind: str, key: str, value: str | None, reason: str = "") -> None:
        conn = self._connect(write=True)
        assert conn is not None
        with closing(conn), conn:
            batch = self._batch if self._batch is not None else self._next_batch(conn)
            conn.execute(
                "INSERT INTO log(batch, kind, key, value, reason, ts) VALUES (?, ?, ?, ?, ?, ?)",
                (batch, kind, key, value, reason, time.time()),
            )

    @staticmethod
    def _next_batch(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT COALESCE(MAX(batch), 0) FROM log").fetchone()
        return int(row[0]) + 1

    def _current(self, kind: str) -> dict[str, tuple[str | None, str, float]]:
        """key -> (value, reason, ts) of the newest live row per key of ``kind``."""
        conn = self._connect(write=False)
        if conn is None:
            return {}
        with closing(conn):
            rows = conn.execute(
                "SELECT key, value, reason, ts FROM log WHERE kind = ? AND undone = 0 ORDER BY id", (kind,)
            ).fetchall()
        return {key: (value, reason, ts) for key, value, reason, ts in rows}

    # -- batches and undo ----------------------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[DecisionStore]:
        """Group the changes made inside the ``with`` block so that one :meth:`undo` reverts them all."""
        if self._batch is not None:  # nested: join the outer batch
            yield self
            return
        conn = self._connect(write=True)
        assert conn is not None
        with closing(conn):
            self._batch = self._next_batch(conn)
        try:
            yield self
        finally:
            self._batch = None

    def undo(self, count: int = 1) -> list[Change]:
        """Revert the last ``count`` batches of changes (a single change is a batch of one). Returns what was undone,
        newest first; an empty list when there is nothing to undo."""
        conn = self._connect(write=False)
        if conn is None:
            return []
        undone: list[Change] = []
        with closing(conn), conn:
            for _ in range(count):
                row = conn.execute("SELECT MAX(batch) FROM log WHERE undone = 0").fetchone()
                if row[0] is None:
                    break
                rows = conn.execute(
                    "SELECT kind, key, value, reason, ts FROM log WHERE batch = ? AND undone = 0 ORDER BY id DESC",
                    (row[0],),
                ).fetchall()
                conn.execute("UPDATE log SET undone = 1 WHERE batch = ?", (row[0],))
                undone.extend(Change(*r) for r in rows)
        return undone

    def redo(self) -> list[Change]:
        """Re-apply the batch the last :meth:`undo` reverted, while no change was made since (a new change ends the
        redo chain, as in an editor). Returns what was redone; an empty list when there is nothing to redo."""
        conn = self._connect(write=False)
        if conn is None:
            return []
        with closing(conn), conn:
            live = conn.execute("SELECT COALESCE(MAX(batch), 0) FROM log WHERE undone = 0").fetchone()[0]
            row = conn.execute(
                "SELECT MIN(batch) FROM log WHERE undone = 1 AND batch > ?", (live,)
            ).fetchone()
            if row[0] is None:
                return []
            rows = conn.execute(
                "SELECT kind, key, value, reason, ts FROM log WHERE batch = ? ORDER BY id", (row[0],)
            ).fetchall()
            conn.execute("UPDATE log SET undone = 0 WHERE batch = ?", (row[0],))
        return [Change(*r) for r in rows]

    # -- keep / drop -----------------------------------------------------------------------------------------------
    def set(self, rel: str, action: str, reason: str = "") -> None:
        """Decide to ``"keep"`` or ``"drop"`` the item ``rel`` (dataset-relative path), with a reason for the manifest."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        self._append(_KIND_ITEM, rel, action, reason)

    def clear(self, rel: str) -> None:
        """Forget the decision about ``rel`` (the export policy decides again); undoable like any change."""
        self._append(_KIND_ITEM, rel, None, "cleared")

    def get(self, rel: str) -> Decision | None:
        """The current decision about ``rel``, or None."""
        return self.all().get(rel)

    def all(self) -> dict[str, Decision]:
        """Every current keep / drop decision, by relative path."""
        return {
            key: Decision(key, value, reason, ts)
            for key, (value, reason, ts) in self._current(_KIND_ITEM).items()
            if value is not None
        }

    # -- captions ------------------------------------------------------------------------------------------------
    def set_caption(self, rel: str, text: str) -> None:
        """Store an edited caption for ``rel``; applied to the exported copy only, never to the user's file."""
        self._append(_KIND_CAPTION, rel, text)

    def caption(self, rel: str) -> str | None:
        """The edited caption of ``rel``, or None when it was not edited."""
        return self.captions().get(rel)

    def captions(self) -> dict[str, str]:
        """Every current caption edit, by relative path."""
        return {
            key: value for key, (value, _, _) in self._current(_KIND_CAPTION).items() if value is not None
        }

    # -- duplicate keepers -----------------------------------------------------------------------------------------
    def set_keeper(self, key: str, rel: str) -> None:
        """Choose ``rel`` as the keeper of the duplicate cluster ``key`` (see :func:`cluster_key`)."""
        self._append(_KIND_KEEPER, key, rel)

    def keeper(self, key: str) -> str | None:
        """The chosen keeper of cluster ``key``, or None."""
        return self.keepers().get(key)

    def keepers(self) -> dict[str, str]:
        """Every current keeper choice: cluster key -> relative path."""
        return {key: value for key, (value, _, _) in self._current(_KIND_KEEPER).items() if value is not None}
