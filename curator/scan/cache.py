"""The scan cache: per-image metrics in SQLite, keyed by (dataset-relative path, size, mtime_ns, checks version).

A rescan reads a record back only when the file's size and modification time and the checks' version all match,
so exactly the changed files are analysed again. Undecodable files are cached too (a corrupt file is not decoded
again until it changes). :class:`TokenCache` keeps the CLIP token offsets of caption texts in the same file.

Example::

    cache = MetricsCache(Workspace.for_dataset(root).ensure().cache_db)
    hit = cache.get("10_cat/a.png", FileKey(1234, 1700000000000000000), "ab12cd34ef56")
    cache.close()
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    rel BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    version TEXT NOT NULL,
    payload TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class FileKey:
    """What identifies one version of a file on disk."""

    size: int
    mtime_ns: int


def _rel_key(rel: str) -> bytes:
    # Non-UTF-8 file names arrive as surrogate-escaped str; store the exact bytes.
    return rel.encode("utf-8", "surrogateescape")


class MetricsCache:
    """A small SQLite store of analysis payloads (JSON dicts). Safe to open when the file does not exist yet."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, rel: str, key: FileKey, version: str) -> dict[str, Any] | None:
        """The cached payload of ``rel`` if it was stored for the same file version and checks version."""
        row = self._db.execute(
            "SELECT size, mtime_ns, version, payload FROM metrics WHERE rel = ?", (_rel_key(rel),)
        ).fetchone()
        if row is None or (row[0], row[1], row[2]) != (key.size, key.mtime_ns, version):
            return None
        try:
            payload: dict[str, Any] = json.loads(row[3])
        except ValueError:
            return None
        return payload

    def get_many(self, wanted: dict[str, FileKey], version: str) -> dict[str, dict[str, Any]]:
        """:meth:`get` for many files at once: rel -> payload of those stored for the same file version and checks
        version. Read in a few queries and decoded as one JSON document, so the records share their metric names
        (one string each, not one per record: a few KB per image at 20,000 images)."""
        valid: list[tuple[str, str]] = []
        rels = list(wanted)
        for start in range(0, len(rels), _LOOKUP_CHUNK):
            chunk = rels[start : start + _LOOKUP_CHUNK]
            by_key = {_rel_key(rel): rel for rel in chunk}
            rows = self._db.execute(
                "SELECT rel, size, mtime_ns, version, payload FROM metrics "
                f"WHERE rel IN ({','.join('?' * len(chunk))})",
                list(by_key),
            ).fetchall()
            for key, size, mtime_ns, row_version, payload in rows:
                rel = by_key.get(bytes(key))
                if rel is not None and (size, mtime_ns, row_version) == (
                    wanted[rel].size,
                    wanted[rel].mtime_ns,
                    version,
                ):
                    valid.append((rel, payload))
        try:
            decoded = json.loads("[" + ",".join(payload for _, payload in valid) + "]")
        except ValueError:
            # a damaged row: find it one by one, drop it, and read the rest as one document again
            valid = [(rel, payload) for rel, payload in valid if _loads(payload) is not None]
            decoded = json.loads("[" + ",".join(payload for _, payload in valid) + "]")
        return {rel: p for (rel, _), p in zip(valid, decoded, strict=True) if isinstance(p, dict)}

    def put_many(self, rows: list[tuple[str, FileKey, str, dict[str, Any]]]) -> None:
        """Store several payloads in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO metrics (rel, size, mtime_ns, version, payload) VALUES (?, ?, ?, ?, ?)",
                [(_rel_key(rel), k.size, k.mtime_ns, v, json.dumps(p)) for rel, k, v, p in rows],
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _loads(payload: str) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_TOKENS_SCHEMA = """
CREATE TABLE IF NOT EXISTS caption_tokens (
    text BLOB PRIMARY KEY,
    version TEXT NOT NULL,
    starts BLOB NOT NULL
)
"""
#: texts per ``IN (...)`` query (well under SQLite's variable limit)
_LOOKUP_CHUNK = 500


class TokenCache:
    """CLIP token start offsets per caption text, next to the metrics in the scan cache, so a rescan of unchanged
    captions neither loads the tokenizer nor tokenizes again. Keyed by the exact text and the tokenizer's version;
    an edited caption is a new text, so it can never be served a stale count.

    Example::

        cache = TokenCache(workspace.cache_db, version="clip-1")
        starts = cache.get_many(["sks, 1girl"])  # text -> array('I') of token starts, hits only
        cache.put_many({"sks, 1girl": array("I", [0, 3, 5, 6])})
        cache.close()
    """

    def __init__(self, path: Path, version: str) -> None:
        self.version = version
        self._db = sqlite3.connect(str(path), timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_TOKENS_SCHEMA)
        except sqlite3.Error:  # not a database, or read-only before the table exists: leave nothing open
            self._db.close()
            raise

    def get_many(self, texts: list[str]) -> dict[str, array[int]]:
        """The stored token starts of those ``texts`` that were stored with this version."""
        wanted = sorted({_rel_key(t) for t in texts})
        found: dict[str, array[int]] = {}
        for i in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[i : i + _LOOKUP_CHUNK]
            rows = self._db.execute(
                f"SELECT text, starts FROM caption_tokens WHERE version = ? AND text IN ({','.join('?' * len(chunk))})",
                (self.version, *chunk),
            )
            for text, blob in rows:
                starts = array("I")
                starts.frombytes(blob)
                found[text.decode("utf-8", "surrogateescape")] = starts
        return found

    def put_many(self, starts: dict[str, array[int]]) -> None:
        """Store the token starts of several texts in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO caption_tokens (text, version, starts) VALUES (?, ?, ?)",
                [(_rel_key(t), self.version, s.tobytes()) for t, s in starts.items()],
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()


@contextmanager
def open_token_cache(cache_db: Path | None) -> Iterator[TokenCache | None]:
    """The scan cache's caption token table for the duration of a ``with`` block, closed after it.

    Yields None (callers then count tokens the plain way) when there is no ``cache_db``, when its folder does not
    exist (a command that only reads a dataset must never create a workspace in it) or when the file cannot be
    opened. Example::

        with open_token_cache(Workspace.for_dataset(root).cache_db) as cache:
            records = load_captions(items, cache)
    """
    cache = None
    if cache_db is not None and Path(cache_db).parent.is_dir():
        from curator.captions.tokenizer import FORMAT_VERSION  # the key the scan stores counts under

        try:
            cache = TokenCache(Path(cache_db), version=f"clip-{FORMAT_VERSION}")
        except sqlite3.Error:  # locked, read-only or not a database: the cache only saves time
            cache = None
    try:
        yield cache
    finally:
        if cache is not None:
            cache.close()
