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
    """A small JPEG of the image at ``path`` (EXIF orientation applied, alpha on a light background) as a data URI,
    or None when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
            image.seek(0)
            thumb = ImageOps.exif_transpose(image)
            thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
            if thumb.mode in ("RGBA", "LA", "PA") or (thumb.mode == "P" and "transparency" in thumb.info):
                rgba = thumb.convert("RGBA")
                thumb = Image.new("RGB", rgba.size, (236, 236, 236))
                thumb.paste(rgba, mask=rgba.getchannel("A"))
            thumb = thumb.convert("RGB")
            buffer = io.BytesIO()
            thumb.save(buffer, "JPEG", quality=quality, optimize=True)
    except Exception:  # any unreadable image gets the placeholder; the scan has reported it already
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
