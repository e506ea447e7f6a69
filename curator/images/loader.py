"""Safe image loading: one decode per image into an :class:`~curator.images.view.ImageView`.

Opening goes through :mod:`curator.images.opening` (bomb guard, EXIF orientation, transparency on white, JPEG draft),
the one way every part of the product opens an image. The view holds one shared analysis pyramid: ``detail``
(long side <= DETAIL_SIZE), ``rgb`` / ``gray`` (<= ANALYSIS_SIZE), each level built once from the one above, so every
check reads the level it needs instead of resizing again; ``native_gray`` keeps a bounded crop at decoded resolution
for the signals that live there (the 8x8 JPEG grid, text strokes).

Bad input never escapes as a traceback: it becomes a :class:`LoadError` whose ``code`` is a stable finding code
(``corrupt``, ``decompression_bomb``, ``unreadable``, ``decode_timeout``) and whose ``evidence`` says why.

Example::

    try:
        view = load_view(Path("train/10_cat/a.png"))
        print(view.width, view.height, view.rgb.shape)
    except LoadError as err:
        print(err.code, err.message)
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from curator.images.opening import (
    DEFAULT_MAX_PIXELS,
    ORIENTATION_OPS,
    ORIENTATION_TAG,
    SWAPPING_ORIENTATIONS,
    LoadError,
    composite,
    decode,
    draft_for,
    open_guarded,
    read_bytes,
    split_alpha,
    upright,
)
from curator.images.view import ANALYSIS_SIZE, DETAIL_SIZE, NATIVE_CROP, ImageView

__all__ = ["DEFAULT_MAX_PIXELS", "LoadError", "load_view", "view_from_image"]

#: JPEGs whose long side is above this are decoded in draft mode (a DCT-domain downscale that still covers
#: DETAIL_SIZE): no check needs more of them than the detail level, except the 8x8 grid, which the file's own
#: quantisation tables describe for a JPEG.
DRAFT_ABOVE = 2048
#: Longest text kept per metadata value (a multi-megabyte text chunk must not bloat the cache).
MAX_META_CHARS = 4000

_EXIF_IFD = 0x8769


def load_view(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageView:
    """Read and decode ``path`` once into an analysis view; raise :class:`LoadError` for bad input.

    The decompression-bomb guard runs on the header's declared size, before any pixel is decoded.
    """
    data = read_bytes(Path(path))
    img = open_guarded(data, max_pixels)
    draft_scale = 1
    if max(img.size) > DRAFT_ABOVE:
        draft_scale = draft_for(img, _cover(img.size, DETAIL_SIZE))
    decode(img)
    return view_from_image(img, data=data, filename=os.fsdecode(Path(path).name), draft_scale=draft_scale)


def _cover(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The size whose long side is ``long_side`` with the aspect of ``size`` (upright or not: draft_for swaps)."""
    scale = long_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def view_from_image(
    img: Image.Image,
    *,
    data: bytes | None = None,
    filename: str = "",
    draft_scale: int = 1,
) -> ImageView:
    """Build the analysis view of an in-memory image (tests and other helpers use it; ``load_view`` ends here).

    ``data`` is the file's bytes (for ``sha256`` / ``file_size``); without it the PNG encoding of ``img`` is used.
    """
    if data is None:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data = buf.getvalue()
    original_mode = img.mode
    fmt = img.format or ""
    exif_raw = _exif_object(img)
    orientation = _orientation(exif_raw)
    frames = _frame_count(img)
    quant = _quant_tables(img)
    text, xmp = _text_and_xmp(img)
    exif = _exif_by_name(exif_raw)

    rgb_img, alpha_img = split_alpha(img)
    pixel_sha = _pixel_sha256(rgb_img, alpha_img, orientation)
    # Transparent pixels are composited on white, as training sees them (curator.images.opening.composite).
    flat = composite(rgb_img, alpha_img)
    native_gray = _native_gray(flat)
    detail_img, small_img, small_alpha = _pyramid(flat, alpha_img)
    detail_img, small_img = upright(detail_img, orientation), upright(small_img, orientation)
    if small_alpha is not None:
        small_alpha = upright(small_alpha, orientation)
    width, height = img.size[0] * draft_scale, img.size[1] * draft_scale
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width

    rgb = np.asarray(small_img, dtype=np.uint8)
    alpha = np.asarray(small_alpha, dtype=np.uint8) if small_alpha is not None else None
    return ImageView(
        rgb=rgb,
        gray=_luma(rgb),
        detail_gray=np.asarray(detail_img.convert("L"), dtype=np.uint8),
        width=width,
        height=height,
        format=fmt,
        mode=original_mode,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pixel_sha256=pixel_sha,
        native_gray=native_gray,
        alpha=alpha,
        draft_scale=draft_scale,
        text=text,
        xmp=xmp,
        exif=exif,
        quant_tables=quant,
        frames=frames,
        filename=filename,
    )


# --- metadata -------------------------------------------------------------------------------------------------


def _exif_object(img: Image.Image) -> Image.Exif | None:
    try:
        return img.getexif()
    except Exception:  # damaged EXIF must not lose the image
        return None


def _orientation(exif: Image.Exif | None) -> int:
    if exif is None:
        return 1
    try:
        value = int(exif.get(ORIENTATION_TAG, 1))
    except (TypeError, ValueError):
        return 1
    return value if value in ORIENTATION_OPS else 1


def _exif_by_name(exif: Image.Exif | None) -> dict[str, str]:
    if not exif:
        return {}
    out: dict[str, str] = {}
    try:
        entries = list(exif.items())
        try:
            entries += list(exif.get_ifd(_EXIF_IFD).items())
        except Exception:
            pass
        for tag, value in entries:
            if tag == _EXIF_IFD:
                continue
            name = ExifTags.TAGS.get(tag, f"0x{tag:04x}")
            out[name] = _meta_text(value)
    except Exception:
        pass
    return out


def _meta_text(value: Any) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace").replace("\x00", "").strip()
    else:
        text = str(value)
    return text[:MAX_META_CHARS]


def _text_and_xmp(img: Image.Image) -> tuple[dict[str, str], str]:
    text: dict[str, str] = {}
    xmp = ""
    info = dict(img.info)
    try:
        info.update(getattr(img, "text", {}) or {})  # PNG text chunks after the image data
    except Exception:
        pass
    for key, value in info.items():
        if key in ("xmp", "XML:com.adobe.xmp"):
            xmp = _meta_text(value)
        elif key in ("exif", "icc_profile", "quantization"):
            continue
        elif isinstance(value, str):
            text[str(key)] = value[:MAX_META_CHARS]
    return text, xmp


def _quant_tables(img: Image.Image) -> dict[int, list[int]] | None:
    tables = getattr(img, "quantization", None)
    if not tables:
        return None
    try:
        return {int(k): [int(x) for x in v] for k, v in tables.items()}
    except Exception:
        return None


def _frame_count(img: Image.Image) -> int:
    try:
        return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # counting frames reads the file; a damaged tail after frame 0 is not our concern
        return 1
    finally:
        try:
            img.seek(0)
        except Exception:
            pass


# --- pixels ---------------------------------------------------------------------------------------------------


def _native_gray(rgb: Image.Image) -> np.ndarray:
    width, height = rgb.size
    side = min(NATIVE_CROP, width, height)
    # Crop on multiples of 8 from the origin so the JPEG block grid keeps its phase.
    left = ((width - side) // 2) // 8 * 8
    top = ((height - side) // 2) // 8 * 8
    crop = rgb.crop((left, top, left + side, top + side)).convert("L")
    return np.asarray(crop, dtype=np.float32)


def _pixel_sha256(rgb: Image.Image, alpha: Image.Image | None, orientation: int) -> str:
    digest = hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}:{orientation}:".encode())
    digest.update(rgb.tobytes())
    if alpha is not None:
        digest.update(alpha.tobytes())
    return digest.hexdigest()


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int] | None:
    """The size with long side ``long_side`` and the aspect of ``size``; None when ``size`` already fits."""
    if max(size) <= long_side:
        return None
    return _cover(size, long_side)


def _pyramid(
    rgb: Image.Image, alpha: Image.Image | None
) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    """The detail level (<= DETAIL_SIZE) and the analysis level (<= ANALYSIS_SIZE, built from the detail level),
    and the alpha at analysis size. Area (BOX) filtering: no ringing for the sharpness and edge measures."""
    detail_size = _fit(rgb.size, DETAIL_SIZE)
    detail = rgb.resize(detail_size, Image.Resampling.BOX) if detail_size else rgb
    small_size = _fit(rgb.size, ANALYSIS_SIZE)
    small = detail.resize(small_size, Image.Resampling.BOX) if small_size else detail
    small_alpha = alpha
    if alpha is not None and small_size:
        small_alpha = alpha.resize(small_size, Image.Resampling.BOX)
    return detail, small, small_alpha


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as float32 0..255 (what Pillow's ``convert("L")`` computes, without rounding)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb.astype(np.float32) @ weights
