"""Safe image loading: one decode per image into an :class:`~curator.images.view.ImageView`.

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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageFile

from curator.images.view import ANALYSIS_SIZE, NATIVE_CROP, ImageView

#: Refuse images whose header declares more pixels than this (about 178 million, twice Pillow's warning limit).
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: Pillow's own warning size; above it a file must not expand more than MAX_EXPANSION times when decoded.
WARN_PIXELS = 89_478_485
MAX_EXPANSION = 200
#: JPEGs whose long side is above this are decoded in draft mode (reduced DCT scale); below it, fully, so the 8x8
#: block grid survives in ``native_gray``.
DRAFT_ABOVE = 4096
#: Draft mode keeps the long side at least this large.
DRAFT_TARGET = 2048
#: Longest text kept per metadata value (a multi-megabyte text chunk must not bloat the cache).
MAX_META_CHARS = 4000

_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
# EXIF orientation -> the transposes that undo it (as Pillow's ImageOps.exif_transpose applies them).
_ORIENTATION_OPS: dict[int, tuple[Image.Transpose, ...]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


class LoadError(Exception):
    """An image that cannot be analysed. ``code`` is the finding code, ``message`` one line, ``evidence`` data."""

    def __init__(self, code: str, message: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.evidence = dict(evidence or {})


def load_view(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageView:
    """Read and decode ``path`` once into an analysis view; raise :class:`LoadError` for bad input.

    The decompression-bomb guard runs on the header's declared size, before any pixel is decoded.
    """
    data = _read_bytes(Path(path))
    img = _open(data)
    width, height = img.size
    if width * height > max_pixels:
        raise LoadError(
            "decompression_bomb",
            f"Declares {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; not decoded",
            {"width": width, "height": height, "pixels": width * height, "limit": max_pixels},
        )
    _refuse_expansion(img, len(data))
    draft_scale = _maybe_draft(img)
    _decode(img)
    return view_from_image(img, data=data, filename=os.fsdecode(Path(path).name), draft_scale=draft_scale)


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

    rgb_img, alpha_img = _normalise(img)
    native_gray = _native_gray(rgb_img)
    pixel_sha = _pixel_sha256(rgb_img, alpha_img, orientation)

    small_rgb, small_alpha = _to_analysis_size(rgb_img, alpha_img)
    for op in _ORIENTATION_OPS.get(orientation, ()):
        small_rgb = small_rgb.transpose(op)
        if small_alpha is not None:
            small_alpha = small_alpha.transpose(op)
    width, height = img.size[0] * draft_scale, img.size[1] * draft_scale
    if orientation in (5, 6, 7, 8):
        width, height = height, width

    rgb = np.asarray(small_rgb, dtype=np.uint8)
    alpha = np.asarray(small_alpha, dtype=np.uint8) if small_alpha is not None else None
    if alpha is not None:
        # Training sees transparent pixels as black: composite on black, like the trainer's RGB conversion does.
        rgb = (rgb.astype(np.uint16) * alpha[..., None] // 255).astype(np.uint8)
    gray = _luma(rgb)
    return ImageView(
        rgb=rgb,
        gray=gray,
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


# --- reading and decoding -------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
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


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data))
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


def _maybe_draft(img: Image.Image) -> int:
    """Draft mode (a reduced DCT decode) only for very large JPEGs; returns the scale factor used."""
    if img.format != "JPEG" or max(img.size) <= DRAFT_ABOVE:
        return 1
    width, height = img.size
    factor = max(img.size) / DRAFT_TARGET
    try:
        img.draft(img.mode, (int(width / factor), int(height / factor)))
    except Exception:
        return 1
    return max(1, round(width / img.size[0]))


def _decode(img: Image.Image) -> None:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is a finding, not a grey half
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
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except (TypeError, ValueError):
        return 1
    return value if value in _ORIENTATION_OPS else 1


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


def _normalise(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (RGB image, alpha image or None) at decoded resolution."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_to_rgb(img), None
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode != "RGB" and mode != "RGBA":
        img = img.convert("RGB")
    if img.mode == "RGBA":
        return img.convert("RGB"), img.getchannel("A")
    return img, None


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and float images to 8 bits: 16-bit range scaled by 1/257, floats in 0..1 scaled by 255."""
    arr = np.asarray(img).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    elif peak > 255.0:
        arr = arr / 257.0
    gray = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


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


def _to_analysis_size(rgb: Image.Image, alpha: Image.Image | None) -> tuple[Image.Image, Image.Image | None]:
    width, height = rgb.size
    long_side = max(width, height)
    if long_side <= ANALYSIS_SIZE:
        return rgb, alpha
    scale = ANALYSIS_SIZE / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = rgb.resize(size, Image.Resampling.BOX)
    small_alpha = alpha.resize(size, Image.Resampling.BOX) if alpha is not None else None
    return small, small_alpha


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as float32 0..255 (what Pillow's ``convert("L")`` computes, without rounding)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb.astype(np.float32) @ weights
