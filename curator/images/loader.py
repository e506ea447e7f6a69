"""Safe image loading: one decode per image into an :class:`~curator.images.view.ImageView`.

Opening goes through :mod:`curator.images.opening` (bomb guard, EXIF orientation, transparency on white, JPEG draft),
the one way every part of the product opens an image. The view is decoded once and shared by every check: the
decoded image's gray, made once, and a gray pyramid built from it once (``detail``, long side <= DETAIL_SIZE, where
the blur check reads a bounded sample of tiles; ``gray``, long side <= ANALYSIS_SIZE, made from the detail level);
``native_gray``, a bounded crop at decoded resolution for the signals that live there (the 8x8 JPEG grid, text
strokes). No scan check reads colour beyond a nearest-neighbour sample, so the colour level ``rgb`` is made only when
it is read (taggers, captioners, CLIP).

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


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` brought down to a long side of ``long_side`` (never up)."""
    return _cover(size, min(long_side, max(size)))


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
    # The decoded image's gray, made once and shared: the native crop (before orientation, so the JPEG grid keeps
    # its phase), the screenshot check's edge bars, and the pyramid below read it.
    luma = composite(rgb_img, alpha_img).convert("L")
    native_gray = _native_gray(luma)
    if orientation != 1:
        rgb_img, alpha_img, luma = (
            upright(rgb_img, orientation),
            upright(alpha_img, orientation) if alpha_img else None,
            upright(luma, orientation),
        )
    detail, small = _gray_levels(luma)
    small_alpha = _reduced(alpha_img, _fit(luma.size, ANALYSIS_SIZE)) if alpha_img is not None else None
    gray = np.asarray(small, dtype=np.uint8)
    alpha = np.asarray(small_alpha, dtype=np.uint8) if small_alpha is not None else None
    width, height = img.size[0] * draft_scale, img.size[1] * draft_scale
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width

    return ImageView(
        gray=gray,
        width=width,
        height=height,
        format=fmt,
        mode=original_mode,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pixel_fingerprint=_fingerprint(rgb_img.size, gray, alpha),
        native_gray=native_gray,
        source=rgb_img,
        source_alpha=alpha_img,
        detail=detail,
        alpha=alpha,
        draft_scale=draft_scale,
        text=text,
        xmp=xmp,
        exif=exif,
        quant_tables=quant,
        frames=frames,
        orientation=orientation,
        filename=filename,
        extra={"source_luma": luma},
    )


def pixel_digest(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """SHA-256 of the image's decoded pixels at full resolution, upright (None when it cannot be decoded): the
    second stage of the pixel-identity check, run only for files whose :attr:`ImageView.pixel_fingerprint` matches
    another's."""
    try:
        img = open_guarded(read_bytes(Path(path)), max_pixels)
        orient = _orientation(_exif_object(img))
        decode(img)
    except LoadError:
        return None
    rgb, alpha = split_alpha(img)
    digest = hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}:{orient}:".encode())
    digest.update(rgb.tobytes())
    if alpha is not None:
        digest.update(alpha.tobytes())
    return digest.hexdigest()


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


def _native_gray(luma: Image.Image) -> np.ndarray:
    """A centre crop (<= NATIVE_CROP square) of the decoded gray (transparency on white), as uint8 gray levels, on
    multiples of 8 from the origin so the JPEG block grid keeps its phase."""
    return centre_crop(luma, align=8)


def centre_crop(gray: Image.Image, side: int = NATIVE_CROP, align: int = 1) -> np.ndarray:
    """The centre square (<= ``side``) of a PIL ``L`` image as uint8 gray levels, its corner on multiples of
    ``align``."""
    width, height = gray.size
    side = min(side, width, height)
    left = ((width - side) // 2) // align * align
    top = ((height - side) // 2) // align * align
    return np.asarray(gray.crop((left, top, left + side, top + side)), dtype=np.uint8)


def _fingerprint(size: tuple[int, int], levels: np.ndarray, alpha: np.ndarray | None) -> str:
    """BLAKE2 of the decoded size and the analysis level's gray levels: equal pixels always give equal
    fingerprints (the level is a function of them), so only files sharing one need the full-resolution
    :func:`pixel_digest` (which also tells apart colours of equal luma)."""
    digest = hashlib.blake2b(f"{size[0]}x{size[1]}:".encode(), digest_size=16)
    # every third pixel each way: still a function of the pixels, a ninth of the bytes to hash; files that differ
    # only between the samples share a fingerprint and are told apart by pixel_digest
    digest.update(np.ascontiguousarray(levels[::3, ::3]).data)
    if alpha is not None:
        digest.update(np.ascontiguousarray(alpha[::3, ::3]).data)
    return digest.hexdigest()


def _reduced(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` area-filtered to ``size`` (BOX: no ringing for the edge measures), by an integer ``reduce`` first (an
    exact block mean, twice as fast as a BOX resize on a 1440 px photo) and a BOX resize of the rest; ``img``
    itself when it is that size already."""
    if img.size == size:
        return img
    return img.resize(size, Image.Resampling.BOX, reducing_gap=1.0)


def _gray_levels(luma: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The gray pyramid, built once: the detail level (long side <= DETAIL_SIZE) from the decoded gray, and the
    analysis level (long side <= ANALYSIS_SIZE, its size set by the decoded image's) from the detail level, a
    quarter of the pixels to read."""
    detail = _reduced(luma, _fit(luma.size, DETAIL_SIZE))
    return detail, _reduced(detail, _fit(luma.size, ANALYSIS_SIZE))


def analysis_rgb(rgb: Image.Image, alpha: Image.Image | None) -> np.ndarray:
    """The analysis level in colour (long side <= ANALYSIS_SIZE, the size of ``ImageView.gray``) composited on
    white at decoded resolution (no dark fringe along alpha edges), as uint8 HxWx3: made on first read of
    :attr:`ImageView.rgb` (taggers, captioners, CLIP), not by a scan."""
    return np.asarray(_reduced(composite(rgb, alpha), _fit(rgb.size, ANALYSIS_SIZE)), dtype=np.uint8)


def color_sample(rgb: Image.Image, alpha: Image.Image | None, long_side: int = 256) -> np.ndarray:
    """Pixels of the image at nearest-neighbour sample points (long side <= ``long_side``), composited on white, as
    uint8 HxWx3: colour statistics without filtering the whole image (the grayscale check's input)."""
    size = _fit(rgb.size, long_side)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.NEAREST)
        alpha = alpha.resize(size, Image.Resampling.NEAREST) if alpha is not None else None
    return np.asarray(composite(rgb, alpha), dtype=np.uint8)
