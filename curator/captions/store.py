"""What local taggers and captioners said about each image, kept in the workspace (``suggestions.sqlite``).

Three tables: ``predictions`` (a model's raw output per image, keyed by the image's path, size and mtime and by the
model's hash, so a second ``caption`` run over unchanged images runs no model), ``suggestions`` (the caption the last
run proposed for each image: what the TUI shows and can accept) and ``runs`` (which model ran, with which settings:
what the report names). ``model_hashes`` remembers each model file's digest by its path, size and mtime, so a
multi-gigabyte model is hashed once, not on every run.

Example::

    with SuggestionStore.open(Workspace.for_dataset(root).ensure()) as store:
        store.put_predictions("sha..", [("10_cat/a.png", FileKey(12, 34), {"text": "a cat"})])
        print(store.predictions("sha..", [("10_cat/a.png", FileKey(12, 34))]))
    print(last_run(Workspace.for_dataset(root)))
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.dataset.workspace import Workspace
from curator.scan.cache import FileKey

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS model_hashes (
        path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS predictions (
        rel BLOB NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, model TEXT NOT NULL,
        payload TEXT NOT NULL, PRIMARY KEY (rel, model))""",
    """CREATE TABLE IF NOT EXISTS suggestions (
        rel BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, source TEXT NOT NULL,
        text TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, info TEXT NOT NULL)""",
)
_HASH_CHUNK = 1 << 20


def _key(text: str) -> bytes:
    # non-UTF-8 file names arrive as surrogate-escaped str: store their exact bytes
    return text.encode("utf-8", "surrogateescape")


def file_key(path: Path) -> FileKey:
    """The (size, mtime_ns) that identifies one version of a file."""
    stat = Path(path).stat()
    return FileKey(stat.st_size, stat.st_mtime_ns)


@dataclass
class SuggestionStore:
    """The suggestion tables of one workspace (see the module docstring)."""

    db: sqlite3.Connection

    @classmethod
    @contextmanager
    def open(cls, workspace: Workspace) -> Iterator[SuggestionStore]:
        """Open (creating the tables) for a ``with`` block; the workspace folder must exist."""
        db = sqlite3.connect(str(workspace.suggestions_db), timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)
            yield cls(db)
        finally:
            db.close()

    def model_hash(self, files: Sequence[Path]) -> str:
        """One digest over ``files`` (a model and its tag list), each file hashed only when it changed."""
        digest = hashlib.sha256()
        for path in files:
            digest.update(self._file_sha(Path(path)).encode())
        return digest.hexdigest()

    def _file_sha(self, path: Path) -> str:
        key = file_key(path)
        name = _key(str(path.resolve()))
        row = self.db.execute(
            "SELECT size, mtime_ns, sha256 FROM model_hashes WHERE path = ?", (name,)
        ).fetchone()
        if row is not None and (row[0], row[1]) == (key.size, key.mtime_ns):
            return str(row[2])
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                sha.update(chunk)
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO model_hashes VALUES (?, ?, ?, ?)",
                (name, key.size, key.mtime_ns, sha.hexdigest()),
            )
        return sha.hexdigest()

    def predictions(self, model: str, images: Sequence[tuple[str, FileKey]]) -> dict[str, dict[str, Any]]:
        """rel -> the stored output of ``model`` for those images whose file is unchanged since it was stored."""
        found: dict[str, dict[str, Any]] = {}
        for rel, key in images:
            row = self.db.execute(
                "SELECT size, mtime_ns, payload FROM predictions WHERE rel = ? AND model = ?",
                (_key(rel), model),
            ).fetchone()
            if row is not None and (row[0], row[1]) == (key.size, key.mtime_ns):
                with suppress(ValueError):  # a damaged row is simply computed again
                    found[rel] = json.loads(row[2])
        return found

    def put_predictions(self, model: str, rows: Sequence[tuple[str, FileKey, dict[str, Any]]]) -> None:
        """Store a model's output for several images in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)",
                [(_key(rel), k.size, k.mtime_ns, model, json.dumps(p)) for rel, k, p in rows],
            )

    def put_suggestions(self, source: str, rows: Sequence[tuple[str, FileKey, str]]) -> None:
        """Remember the caption each image was offered (``source``: the model's name)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO suggestions VALUES (?, ?, ?, ?, ?)",
                [(_key(rel), k.size, k.mtime_ns, source, text) for rel, k, text in rows],
            )

    def add_run(self, info: dict[str, Any]) -> None:
        """Record one ``caption`` run (model name, kind, hash, settings, image count)."""
        with self.db:
            self.db.execute("INSERT INTO runs (created, info) VALUES (?, ?)", (time.time(), json.dumps(info)))


@contextmanager
def _read_only(workspace: Workspace) -> Iterator[sqlite3.Connection | None]:
    """The store opened read-only, or None when there is none (readers must never create a workspace)."""
    path = workspace.suggestions_db
    if not path.is_file():
        yield None
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        yield None
        return
    try:
        yield db
    finally:
        db.close()


def suggestion_for(workspace: Workspace, rel: str, image: Path) -> tuple[str, str] | None:
    """(source, caption) the last ``caption`` run offered for ``rel``, while the image is unchanged; else None."""
    with _read_only(workspace) as db:
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT size, mtime_ns, source, text FROM suggestions WHERE rel = ?", (_key(rel),)
            ).fetchone()
            key = file_key(image)
        except (sqlite3.Error, OSError):
            return None
    if row is None or (row[0], row[1]) != (key.size, key.mtime_ns):
        return None
    return str(row[2]), str(row[3])


def last_run(workspace: Workspace) -> dict[str, Any] | None:
    """What the newest ``caption`` run recorded (model, kind, settings, when), or None when none ran."""
    with _read_only(workspace) as db:
        if db is None:
            return None
        try:
            row = db.execute("SELECT created, info FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
    if row is None:
        return None
    try:
        info = json.loads(row[1])
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    return {**info, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row[0]))}
