"""Thumbnails for the HTML report, embedded as ``data:`` URIs (the report is one file that needs no network).

Only images the scan decoded are opened again; an image that was refused (corrupt, decompression bomb) gets a
placeholder instead, so the report never decodes what the scan judged unsafe.

Example::

    uri = thumbnail_uri(Path("10_cat/a.png"))   # 'data:image/jpeg;base64,...' or None
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

#: Long side of a thumbnail in pixels (shown at half that on high-density screens).
THUMB_SIZE = 160
#: Images larger than this are not reopened for a thumbnail (the scan's own guard is similar).
MAX_PIXELS = 120_000_000


def thumbnail_uri(path: Path, size: int = THUMB_SIZE, quality: int = 72) -> str | None:
    """A small JPEG of the image at ``path`` as training sees it (upright, transparency on white; opened by
    :func:`curator.images.opening.thumbnail`) as a data URI, or None when it cannot be read."""
    from curator.images.opening import thumbnail

    try:
        thumb = thumbnail(path, size, MAX_PIXELS)
        if thumb is None:
            return None
        buffer = io.BytesIO()
        thumb.save(buffer, "JPEG", quality=quality, optimize=True)
    except Exception:  # any unreadable image gets the placeholder; the scan has reported it already
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
