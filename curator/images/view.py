"""The analysis view of one decoded image: what every per-image check receives (decode once, score many).

Produced by :func:`curator.images.loader.load_view`. Arrays are small and bounded so that a scan's memory does not depend
on the images' sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Long side of ``rgb`` / ``gray`` (never upscaled). Metrics computed on them do not depend on the file's resolution.
ANALYSIS_SIZE = 512
#: Long side of the detail level (never upscaled) that tiles are read at from ``source``: the scale where the sharpness
#: of small blur radii is still visible and does not depend on the file's resolution.
DETAIL_SIZE = 1024
#: Side of ``native_gray``: a centre crop at the decoded resolution, so the 8x8 JPEG grid is still there.
NATIVE_CROP = 768


@dataclass
class ImageView:
    """One decoded image, ready for the checks.

    - ``gray``: uint8 HxW gray levels, long side <= ANALYSIS_SIZE, EXIF orientation applied, alpha composited on
      white (as training sees it): the analysis level of the gray pyramid, made from ``detail``.
    - ``rgb`` (a property): uint8 HxWx3, the same level in colour; made on first read (taggers, captioners, CLIP),
      which no scan check does: they read the gray levels, and the grayscale check :meth:`color_sample`.
    - ``detail``: the detail level of the gray pyramid (PIL ``L``, long side <= DETAIL_SIZE, upright, transparency on
      white), made from the decoded gray.
    - ``source`` / ``source_alpha``: the decoded image (PIL RGB, upright, not composited) and its alpha, at decoded
      resolution, for the colour sample and the colour level; they stay in the worker (never cached).
    - ``native_gray``: uint8 gray levels (a float array in views made by hand), a centre crop (<= NATIVE_CROP square)
      of the image at decoded resolution, before any resize, taken before EXIF rotation so the JPEG block grid stays
      aligned; None when not available.
    - ``alpha``: uint8 HxW at analysis size, or None when the image has no alpha channel.
    - ``width`` / ``height``: the original size after EXIF orientation.
    - ``orientation``: the file's EXIF orientation (1..8; 1 when absent or damaged), already applied to every level.
    - ``draft_scale``: 1 normally; 2, 4 or 8 when JPEG draft mode decoded a reduced image (then ``native_gray`` is of
      the reduced image).
    - ``format``, ``mode``: Pillow's format and original mode (``P``, ``CMYK``, ``I;16``, ``LA``...).
    - ``text``: PNG text chunks and other string info (key -> value); ``xmp``: the XMP packet text ('' if none);
      ``exif``: EXIF tags by name -> str.
    - ``quant_tables``: JPEG quantisation tables (table id -> 64 ints, in natural order as Pillow gives them), or None.
    - ``file_size``, ``sha256`` (file bytes), ``pixel_fingerprint`` (BLAKE2 of the decoded size and the analysis
      level: equal pixels give equal fingerprints; exact_duplicate confirms a match at full resolution).
    - ``frames``: number of frames (GIF/WebP animations; only the first is analysed).
    """

    gray: np.ndarray
    width: int
    height: int
    format: str
    mode: str
    file_size: int
    sha256: str
    pixel_fingerprint: str = ""
    native_gray: np.ndarray | None = None
    source: Any = None
    source_alpha: Any = None
    detail: Any = None
    alpha: np.ndarray | None = None
    draft_scale: int = 1
    text: dict[str, str] = field(default_factory=dict)
    xmp: str = ""
    exif: dict[str, str] = field(default_factory=dict)
    quant_tables: dict[int, list[int]] | None = None
    frames: int = 1
    orientation: int = 1
    filename: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rgb(self) -> np.ndarray:
        """The analysis level in colour, made on first read from ``source`` (see the class docs)."""
        if "rgb" not in self.extra:
            from curator.images.loader import analysis_rgb

            self.extra["rgb"] = analysis_rgb(self.source, self.source_alpha)
        rgb: np.ndarray = self.extra["rgb"]
        return rgb

    def color_sample(self) -> np.ndarray:
        """Pixels at nearest-neighbour sample points (long side <= 256), transparency on white, uint8 HxWx3: colour
        statistics without filtering the whole image."""
        from curator.images.loader import color_sample

        return color_sample(self.source, self.source_alpha)

    def source_luma(self) -> Any:
        """The decoded image as a PIL ``L`` image at decoded resolution, upright, transparency on white; made once per
        view (by the loader, which crops ``native_gray`` from it) and shared by the checks that read it (None without
        a source)."""
        if self.source is None:
            return None
        if "source_luma" not in self.extra:
            from curator.images.opening import composite

            self.extra["source_luma"] = composite(self.source, self.source_alpha).convert("L")
        return self.extra["source_luma"]
