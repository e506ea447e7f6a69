"""Image sizes for the plan, without decoding: the scan cache when it holds the file, else the image header.

Sizes are after EXIF orientation (a portrait photo stored sideways is portrait), as the scan and the bundled trainer
see them. (Kohya sd-scripts reads the stored size and ignores EXIF orientation.)

Example::

    sizes, stats = image_sizes(dataset)
    stats  # {"cache": 280, "header": 28, "unreadable": 0}
"""

from __future__ import annotations

import os
from pathlib import Path

from curator.dataset.discover import Dataset


def header_size(path: Path) -> tuple[int, int] | None:
    """Width and height after EXIF orientation, read from the header (pixels are not decoded); None if unreadable."""
    from curator.images.opening import header_size as opened_header_size

    return opened_header_size(path)


def _cached_sizes(dataset: Dataset, cache_db: Path) -> dict[str, tuple[int, int]]:
    if not cache_db.is_file():
        return {}
    try:
        from curator.scan.cache import FileKey, MetricsCache
        from curator.scan.run import cache_version

        cache = MetricsCache(cache_db)
    except Exception:  # an unreadable cache only means reading headers
        return {}
    keys = {}
    for item in dataset.items:
        try:
            st = os.stat(item.path)
        except OSError:
            continue
        keys[item.rel] = FileKey(st.st_size, st.st_mtime_ns)
    found = {}
    try:
        for rel, hit in cache.get_many(keys, cache_version()).items():
            if hit.get("decoded") and hit.get("width") and hit.get("height"):
                found[rel] = (int(hit["width"]), int(hit["height"]))
    except Exception:
        pass
    finally:
        cache.close()
    return found


def image_sizes(
    dataset: Dataset, workspace: Path | None = None
) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """``rel -> (width, height)`` of every readable item, and how many sizes came from the cache / headers."""
    from curator.dataset.workspace import Workspace

    ws = Workspace.for_dataset(dataset.root, workspace)
    sizes = _cached_sizes(dataset, ws.cache_db)
    stats = {"cache": len(sizes), "header": 0, "unreadable": 0}
    for item in dataset.items:
        if item.rel in sizes:
            continue
        size = header_size(item.path)
        if size is None:
            stats["unreadable"] += 1
            continue
        sizes[item.rel] = size
        stats["header"] += 1
    return sizes, stats
