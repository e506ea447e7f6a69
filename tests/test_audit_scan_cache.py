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
