"""Where the benchmarks find ``bench_dev``, and how they place its files in a dataset folder.

``../shared/bench_dev`` beside the checkout (one level further up from a git worktree folder), or the folder named by
``DREAMCURATE_BENCH_DEV``. The data set is read-only and never copied into the repository.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [REPO / ".." / "shared" / "bench_dev", REPO / ".." / ".." / "shared" / "bench_dev"]
DEFAULT_DATA = Path(
    os.environ.get("DREAMCURATE_BENCH_DEV") or next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
)


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or a copy across file systems.

    Not a symlink: a scan reports an image that links out of its dataset as a finding and never reads it.
    """
    try:
        os.link(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)


def _decode(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.size[0]


def bare_decode(files: list[Path], workers: int, chunksize: int = 4) -> float:
    """Seconds to open and fully decode every file and nothing else, in a pool of ``workers`` processes: the
    baseline the scan benchmarks divide by."""
    return _pooled(_decode, files, workers, chunksize)


def loader_only(files: list[Path], workers: int, chunksize: int = 4) -> float:
    """Seconds for the product's loader alone (``load_view``: the decode, the decoded gray and its pyramid, the
    digests and metadata; no check) over every file, in a pool like :func:`bare_decode`'s."""
    return _pooled(_load_view, files, workers, chunksize)


def _pooled(fn: Callable[[Path], object], files: list[Path], workers: int, chunksize: int) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, files, chunksize=chunksize))
    return time.perf_counter() - started


def _load_view(path: Path) -> int:
    from curator.images.loader import load_view

    return load_view(path).width
