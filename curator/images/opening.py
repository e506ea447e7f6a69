"""One way to open an image: every reader of pixels (the scan's loader, plan sizes, report thumbnails, the TUI preview
and the trainer) goes through here, so they all see the same picture.

- the bomb guard runs on the header's declared size before any pixel is decoded;
- EXIF orientation is applied (a phone photo stored sideways is upright);
- transparency is composited on white, the way training sees it;
- a JPEG that is only needed at a reduced size is decoded in the DCT domain (``draft``), several times faster.

Bad input raises :class:`LoadError` with a stable finding ``code`` (``corrupt``, ``decompression_bomb``,
``unreadable``) and a one-line message.

Example::

    image = open_rgb(Path("10_cat/a.png"))                  # upright RGB, alpha on white
    small = thumbnail(Path("10_cat/a.jpg"), 160)            # or None when it cannot be read
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile

#: Refuse images whose header declares more pixels than this (about 178 million, twice Pillow's warning limit).
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: Pillow's own warning size; above it a file must not expand more than MAX_EXPANSION times when decoded.
WARN_PIXELS = 89_478_485
MAX_EXPANSION = 200
#: The colour transparent pixels become: the trainer's background, so every surface shows what training sees.
BACKGROUND = (255, 255, 255)

ORIENTATION_TAG = 0x0112
#: EXIF orientations that turn the image by 90 degrees (width and height swap).
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
# EXIF orientation -> the transposes that undo it (as Pillow's ImageOps.exif_transpose applies them).
ORIENTATION_OPS: dict[int, tuple[Image.Transpose, ...]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}
_ALPHA_MODES = ("RGBA", "LA", "La", "PA", "RGBa")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class LoadError(Exception):
    """An image that cannot be opened. ``code`` is the finding code, ``message`` one line, ``evidence`` data."""

    def __init__(self, code: str, message: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.evidence = dict(evidence or {})


def read_bytes(path: Path) -> bytes:
    """The file's bytes; :class:`LoadError` ``unreadable`` / ``corrupt`` (empty) instead of an OSError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except PermissionError as exc:
        raise LoadError("unreadable", f"Permission denied: {exc.strerror}", {"errno": exc.errno}) from exc
    except IsADirectoryError as exc:
        raise LoadError("unreadable", "Is a folder, not a file", {"errno": exc.errno}) from exc
    except FileNotFoundError as exc:
        raise LoadError(
            "unreadable", "File not found (moved, or a broken link)", {"errno": exc.errno}
        ) from exc
    except OSError as exc:
        raise LoadError(
            "unreadable", f"Cannot read the file: {exc.strerror or exc}", {"errno": exc.errno}
        ) from exc
    if not data:
        raise LoadError("corrupt", "Empty file (0 bytes)", {"reason": "zero_bytes"})
    return data


def open_guarded(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A lazily opened image (nothing decoded yet) whose header passed the bomb guard."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise LoadError(
            "decompression_bomb", f"Refused by Pillow: {exc}", {"reason": "pillow_limit"}
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise LoadError(
            "corrupt", "Not an image Pillow can read (unknown or damaged header)", {"reason": "not_an_image"}
        ) from exc
    except Exception as exc:  # any decoder plugin error on a hostile header
        raise LoadError("corrupt", f"Damaged header: {_short(exc)}", {"reason": "bad_header"}) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise LoadError(
            "decompression_bomb",
            f"Declares {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; not decoded",
            {"width": width, "height": height, "pixels": width * height, "limit": max_pixels},
        )
    _refuse_expansion(img, len(data))
    return img


def _refuse_expansion(img: Image.Image, file_size: int) -> None:
    """Above Pillow's warning size, refuse files that expand by more than MAX_EXPANSION: a bomb's signature (a few
    kilobytes declaring a hundred megapixels), where a real photo of that size is tens of megabytes."""
    width, height = img.size
    if width * height <= WARN_PIXELS:
        return
    raw = width * height * max(1, len(img.getbands()))
    ratio = raw / max(1, file_size)
    if ratio > MAX_EXPANSION:
        raise LoadError(
            "decompression_bomb",
            f"Declares {width}x{height} = {width * height:,} pixels from only {file_size:,} bytes "
            f"({ratio:,.0f}:1); not decoded",
            {
                "width": width,
                "height": height,
                "pixels": width * height,
                "expansion": round(ratio),
                "limit": MAX_EXPANSION,
            },
        )


def orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 when absent or damaged."""
    try:
        value = int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not lose the image
        return 1
    return value if value in ORIENTATION_OPS else 1


def draft_for(img: Image.Image, min_size: tuple[int, int] | None) -> int:
    """Ask a JPEG to decode at the smallest DCT scale (1/2..1/8) that still covers ``min_size`` (upright width,
    height); returns the scale factor obtained (1: a full decode, for other formats or without ``min_size``)."""
    if img.format != "JPEG" or min_size is None:
        return 1
    want_w, want_h = min_size
    if orientation(img) in SWAPPING_ORIENTATIONS:
        want_w, want_h = want_h, want_w
    width = img.size[0]
    try:
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (max(1, want_w), max(1, want_h)))
    except Exception:
        return 1
    return max(1, round(width / img.size[0]))


def decode(img: Image.Image) -> None:
    """Decode the pixels; a truncated or damaged stream is a :class:`LoadError` ``corrupt``, never a grey half."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except Image.DecompressionBombError as exc:
        raise LoadError(
            "decompression_bomb", f"Refused by Pillow: {exc}", {"reason": "pillow_limit"}
        ) from exc
    except MemoryError as exc:
        raise LoadError("decompression_bomb", "Out of memory while decoding", {"reason": "memory"}) from exc
    except OSError as exc:
        text = str(exc)
        reason = "truncated" if "truncated" in text or "broken data stream" in text else "decoder_error"
        message = f"Cannot decode ({reason.replace('_', ' ')}): {_short(exc)}"
        raise LoadError("corrupt", message, {"reason": reason}) from exc
    except Exception as exc:
        message = f"Cannot decode (decoder error): {_short(exc)}"
        raise LoadError("corrupt", message, {"reason": "decoder_error"}) from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (RGB image as stored under the alpha, alpha or None), at decoded resolution.

    16-bit and float images become 8 bits by scale (1/257, or x255 for floats in 0..1) instead of clipping.
    """
    mode = img.mode
    if mode in _WIDE_MODES:
        return _wide_to_rgb(img), None
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in _ALPHA_MODES:
        img = img.convert("RGBA")
    elif mode not in ("RGB", "RGBA"):
        img = img.convert("RGB")
    if img.mode == "RGBA":
        return img.convert("RGB"), img.getchannel("A")
    return img, None


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    arr = np.asarray(img).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    elif peak > 255.0:
        arr = arr / 257.0
    gray = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def composite(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """``rgb`` over :data:`BACKGROUND` through ``alpha`` (what training sees); ``rgb`` itself without alpha."""
    if alpha is None:
        return rgb
    out = Image.new("RGB", rgb.size, BACKGROUND)
    out.paste(rgb, mask=alpha)
    return out


def upright(img: Image.Image, orient: int) -> Image.Image:
    """``img`` with the transposes that undo EXIF orientation ``orient``."""
    for op in ORIENTATION_OPS.get(orient, ()):
        img = img.transpose(op)
    return img


def open_rgb(
    path: Path, min_size: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """The image at ``path`` as training sees it: upright RGB, transparency on white, bomb-guarded.

    ``min_size`` (upright width, height) lets a JPEG decode at a reduced DCT scale that still covers it.
    Raises :class:`LoadError`.
    """
    img = open_guarded(read_bytes(Path(path)), max_pixels)
    orient = orientation(img)
    draft_for(img, min_size)
    decode(img)
    rgb, alpha = split_alpha(img)
    return upright(composite(rgb, alpha), orient)


def thumbnail(path: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image | None:
    """An RGB thumbnail (long side ``size``) of the image at ``path`` as training sees it; None when unreadable."""
    try:
        img = open_rgb(path, (size, size), max_pixels)
    except LoadError:
        return None
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img


def header_size(path: Path) -> tuple[int, int] | None:
    """Width and height after EXIF orientation, from the header alone (nothing decoded); None when unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = image.size
                orient = orientation(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return (height, width) if orient in SWAPPING_ORIENTATIONS else (width, height)
