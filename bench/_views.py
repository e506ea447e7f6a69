"""Analysis views for the bench: the project's loader when present, else a minimal stand-in with the same fields."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from curator.view import ANALYSIS_SIZE, NATIVE_CROP, ImageView


def load(path: Path) -> ImageView:
    """``curator.loader.load_view`` when the foundation's loader exists, else :func:`fallback_view`."""
    try:
        from curator.loader import load_view
    except ImportError:
        return fallback_view(path)
    return load_view(path)


def fallback_view(path: Path) -> ImageView:
    """A minimal ImageView (same fields and conventions as the loader's) for bench runs before the loader exists."""
    data = path.read_bytes()
    img = Image.open(path)
    img.load()
    quant = {int(k): list(v) for k, v in getattr(img, "quantization", {}).items()} or None
    text = {str(k): str(v) for k, v in (getattr(img, "text", None) or {}).items()}
    xmp = img.info.get("xmp", b"")
    xmp = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp or "")
    exif = {}
    try:
        from PIL.ExifTags import TAGS

        exif = {TAGS.get(k, str(k)): str(v) for k, v in img.getexif().items()}
    except Exception:  # noqa: BLE001 - metadata is optional here
        pass
    fmt, mode = img.format or "", img.mode
    native = img.convert("RGB")
    w0, h0 = native.size
    side = min(NATIVE_CROP, w0, h0)
    left, top = (w0 - side) // 2, (h0 - side) // 2
    native_gray = np.asarray(native.crop((left, top, left + side, top + side)).convert("L"), dtype=np.float32)
    rgb_img = ImageOps.exif_transpose(native)
    width, height = rgb_img.size
    scale = ANALYSIS_SIZE / max(width, height)
    if scale < 1:
        rgb_img = rgb_img.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX
        )
    rgb = np.asarray(rgb_img, dtype=np.uint8)
    gray = (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)
    return ImageView(
        rgb=rgb, gray=gray, width=width, height=height, format=fmt, mode=mode, file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), native_gray=native_gray, text=text, xmp=xmp, exif=exif,
        quant_tables=quant, filename=path.name,
    )  # fmt: skip
