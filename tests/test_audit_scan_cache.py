"""The scan cache key: a changed check version or a file rewritten to a new size is analysed again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.checks import image_checks
from curator.scan.results import ScanSettings
from curator.scan.run import scan


def _dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "2_cat"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "train"


def test_a_new_check_version_reanalyses_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _dataset(tmp_path)
    settings = ScanSettings(workers=1, progress=False)
    assert scan(root, settings).analysed == 3
    assert scan(root, settings).analysed == 0
    check = image_checks()[0]
    monkeypatch.setattr(type(check), "version", check.version + 1)
    again = scan(root, settings)
    assert (again.analysed, again.cached) == (3, 0)


def test_same_mtime_but_new_size_is_analysed(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    settings = ScanSettings(workers=1, progress=False)
    first = scan(root, settings)
    path = root / "2_cat" / "1.png"
    stat = path.stat()
    Image.new("RGB", (96, 80), (1, 2, 3)).save(path)  # a different, smaller file...
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...with the old modification time
    assert path.stat().st_size != stat.st_size
    again = scan(root, settings)
    assert (again.analysed, again.cached) == (1, 2)
    old, new = (r.record("2_cat/1.png").metrics["sha256"] for r in (first, again))
    assert old != new  # the record describes the new bytes, not the cached old ones


def test_get_many_equals_get_and_shares_metric_names(tmp_path: Path) -> None:
    """The batch read answers as the per-file read does: stale versions, changed files, missing and damaged rows,
    non-UTF-8 names and more files than one query takes; the payloads share their key strings."""
    import sqlite3

    from curator.scan.cache import FileKey, MetricsCache

    db = tmp_path / "cache.sqlite"
    cache = MetricsCache(db)
    rels = [f"10_a/{i:04d}.png" for i in range(1203)] + ["10_a/caf\udce9.png"]
    keys = {rel: FileKey(100 + i, 7 * i) for i, rel in enumerate(rels)}
    cache.put_many(
        [
            (rel, keys[rel], "v1", {"decoded": True, "width": i, "sha256": f"{i:x}"})
            for i, rel in enumerate(rels)
        ]
    )
    cache.put_many([(rels[5], keys[rels[5]], "v0", {"decoded": True})])  # stored by an older checks version
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE metrics SET payload = '{broken' WHERE rel = ?", (rels[9].encode(),))
    wanted = dict(keys)
    wanted[rels[7]] = FileKey(1, 1)  # the file changed since
    wanted["10_a/new.png"] = FileKey(3, 3)  # never scanned
    many = cache.get_many(wanted, "v1")
    assert many == {rel: p for rel, k in wanted.items() if (p := cache.get(rel, k, "v1")) is not None}
    assert rels[5] not in many and rels[7] not in many and rels[9] not in many and "10_a/new.png" not in many
    assert len(many) == len(rels) - 3 and many[rels[-1]]["width"] == len(rels) - 1
    first, second = (list(many[r]) for r in (rels[0], rels[1]))
    assert all(a is b for a, b in zip(first, second, strict=True))  # one string per metric name
    cache.close()
