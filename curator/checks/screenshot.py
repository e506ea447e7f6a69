"""``screenshot``: screen captures (window chrome, UI, text), from layered evidence reported by name.

Evidence layers, each a named entry in the finding's evidence:

- ``metadata``: the capture tool named in PNG text / EXIF ``Software`` (gnome-screenshot, Spectacle, Flameshot,
  Greenshot, ShareX, Snipaste, Snipping Tool, ...) or the XMP ``UserComment`` "Screenshot" written by iOS / macOS.
- ``filename``: the names capture tools give in English, Chinese, Japanese, German, Spanish and French.
- ``resolution``: the exact size of a common screen (weak: it only adds to other evidence, never fires alone).
- ``pixels``: pixel structure that works with no name or metadata: flat UI regions in exact colours, long hard
  horizontal / vertical edges, small high-contrast text-like strokes on flat backgrounds (at decoded resolution, and
  at the detail level for larger files, so upscaled or re-saved captures still show them), and window chrome: bars of
  one flat colour with small text at the top or bottom edge (menu, tool, title, status and task bars), scored on
  those edge regions at decoded resolution, so a photo shown inside a program window is found by its frame.
  Thumbnail-sized images (``small_side``) get no pixel-only verdict without chrome: at 280 px line art reads as text.
- ``clip``: a zero-shot screenshot probability when CLIP features are configured (see ``curator.checks.clip_features``).

The layers add up to a score; the finding fires at ``threshold`` and is an error at ``error_threshold``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from curator.checks._imageops import tile_range, tile_view
from curator.checks.base import CheckContext, ImageCheck, Metrics
from curator.checks.clip_features import clip_features
from curator.findings import Finding, Severity
from curator.images.loader import centre_crop

CAPTURE_TOOLS = (
    "gnome-screenshot", "spectacle", "flameshot", "greenshot", "sharex", "snipaste", "snipping tool",
    "screenshot", "screencapture", "ksnapshot", "shutter", "lightshot", "xfce4-screenshooter", "scrot",
    "grim", "maim", "screen sketch", "snagit", "picpick", "monosnap", "skitch", "gyazo",
)  # fmt: skip

FILENAME_PATTERNS = (
    r"^screenshot[ _\-]", r"^screen ?shot[ _\-]", r"^screenshot from ", r"^screenshot\d",
    r"截图", r"屏幕截图", r"微信截图_", r"qq截图", r"^snipaste_", r"スクリーンショット",
    r"^bildschirmfoto", r"^captura de pantalla", r"^capture d[’']écran", r"^capture d[’']ecran",
    r"^screen_?capture", r"^scr_?\d{6,}", r"^flameshot",
)  # fmt: skip

SCREEN_SIZES = {
    (1280, 720), (1280, 800), (1280, 1024), (1366, 768), (1440, 900), (1536, 864), (1600, 900), (1680, 1050),
    (1920, 1080), (1920, 1200), (2560, 1080), (2560, 1440), (2560, 1600), (2880, 1800), (3024, 1964),
    (3440, 1440), (3840, 2160), (1170, 2532), (1179, 2556), (1290, 2796), (1284, 2778), (1125, 2436),
    (1242, 2688), (750, 1334), (1080, 1920), (1080, 2340), (1080, 2400), (1440, 3200), (2048, 1536),
    (2732, 2048), (2388, 1668), (2360, 1640), (1024, 768), (800, 600),
}  # fmt: skip


def metadata_hint(text: dict[str, str], xmp: str, exif: dict[str, str]) -> str | None:
    """The capture tool or marker found in PNG text, XMP or EXIF, or None."""
    for key in ("Software", "software", "Source", "Comment", "Description", "Title"):
        for source in (text, exif):
            value = str(source.get(key, "")).lower()
            for tool in CAPTURE_TOOLS:
                if tool in value:
                    return f"{key}={source.get(key)}"
    if re.search(r"UserComment[^<]*?>?\s*(<[^>]*>\s*)*[^<]*screenshot", xmp or "", re.IGNORECASE | re.DOTALL):
        return "XMP UserComment=Screenshot"
    if exif.get("UserComment", "").strip().lower() == "screenshot":
        return "EXIF UserComment=Screenshot"
    return None


def filename_hint(filename: str) -> str | None:
    """The capture-tool naming pattern that ``filename`` matches, or None."""
    name = filename.rsplit("/", 1)[-1].lower()
    for pattern in FILENAME_PATTERNS:
        if re.search(pattern, name):
            return pattern
    return None


def is_screen_size(width: int, height: int) -> bool:
    """True when width x height (either orientation) is a common screen resolution."""
    return (width, height) in SCREEN_SIZES or (height, width) in SCREEN_SIZES


def _longest_runs(ok: np.ndarray) -> np.ndarray:
    """Length of the longest run of True in each row of a boolean matrix (vectorised)."""
    padded = np.zeros((ok.shape[0], ok.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = ok
    edges = np.diff(padded, axis=1)
    best = np.zeros(ok.shape[0], dtype=np.int64)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # same row-major order as the starts
    if rows.size:
        np.maximum.at(best, rows, ends - starts)
    return best


def straight_edges(
    gray: np.ndarray, min_fraction: float = 0.25, step: float = 24.0, flat: float = 2.0
) -> float:
    """Long, hard, perfectly horizontal or vertical edges beside a flat area (window borders, toolbars, panels,
    status bars, letterbox bars), per 100 px of the image's sides; adjacent boundaries count once.

    An edge is a run of at least ``min_fraction`` of the side where the rows two apart differ by ``step`` or more
    (two apart: a downscale's antialiasing spreads a one-pixel step) while one side stays flat within ``flat``.
    """
    g = np.asarray(gray)
    if min(g.shape) < 16:
        return 0.0
    # gray levels (a view's gray) in exact int16, half the bytes of float32
    g = g.astype(np.int16) if g.dtype == np.uint8 else g.astype(np.float32, copy=False)
    # horizontal edges (rows two apart, flat along a row), then vertical ones computed along the same contiguous
    # rows (columns two apart, flat down a column) and judged per column: no transposed copy
    d = g[2:, 1:] - g[:-2, 1:]
    jump = np.abs(d, out=d) >= step
    level = np.abs(np.diff(g, axis=1)) <= flat  # each row's flatness, once: the rows beside an edge share it
    total = _edge_lines(jump & (level[:-2] | level[2:]), min_fraction * g.shape[1])
    d = g[1:, 2:] - g[1:, :-2]
    jump = np.abs(d, out=d) >= step
    level = np.abs(np.diff(g, axis=0)) <= flat
    total += _edge_lines((jump & (level[:, :-2] | level[:, 2:])).T, min_fraction * g.shape[0])
    return 100.0 * total / float(sum(g.shape))


def _edge_lines(ok: np.ndarray, need: float) -> int:
    """The boundaries among the rows of ``ok`` with a run of at least ``need`` qualifying pixels (adjacent rows: one
    boundary)."""
    # A row with fewer qualifying pixels than a line needs has no such run: measure the others only.
    rows = np.flatnonzero(np.count_nonzero(ok, axis=1) >= need)
    lines = np.zeros(ok.shape[0], dtype=bool)
    if rows.size:
        lines[rows] = _longest_runs(ok[rows]) >= need
    return int((lines & ~np.concatenate([[False], lines[:-1]])).sum())


def _text_tiles(
    g: np.ndarray, tile: int, index: np.ndarray, spread: np.ndarray, background: float = 0.0
) -> np.ndarray:
    """The text test of :func:`text_fraction` for the tiles at flat ``index`` (row-major) with contrast ``spread``."""
    tiles = tile_view(g, tile)
    t = tiles[index // tiles.shape[1], index % tiles.shape[1]]  # copies the candidate tiles only
    flat = t.reshape(len(t), -1)
    n = flat.shape[1]
    # how far the background may stray from the median: one grey level, or a share of the tile's contrast
    limit = np.maximum(1.0, background * spread.astype(np.float64))[:, None]
    if flat.dtype == np.uint8:
        # Gray levels (always, for a view's native_gray), in doubled integers: twice the median is the sum of the
        # middle pair of each tile's sorted bytes (a radix sort), and every test below is exact on twice the values.
        lo, hi = (n - 1) // 2, n // 2
        ordered = np.sort(flat, axis=1, kind="stable")
        dev = np.abs(
            (flat.astype(np.int16) << 1) - (ordered[:, lo].astype(np.int16) + ordered[:, hi])[:, None]
        )
        bg_share = np.count_nonzero(dev <= np.floor(2.0 * limit).astype(np.int16), axis=1) / n
        ink = dev >= spread.astype(np.int16)[:, None]  # |t - median| >= spread / 2
    else:
        dev = np.abs(flat - np.median(flat, axis=1)[:, None])
        bg_share = np.count_nonzero(dev <= limit, axis=1) / n
        ink = dev >= 0.5 * spread[:, None]
    ink_share = np.count_nonzero(ink, axis=1) / n
    ink = ink.reshape(t.shape)
    # ink edges crossed per row, and per column
    across = np.count_nonzero(ink[:, :, 1:] != ink[:, :, :-1], axis=(1, 2)) / tile
    down = np.count_nonzero(ink[:, 1:, :] != ink[:, :-1, :], axis=(1, 2)) / tile
    return (bg_share >= 0.5) & (ink_share <= 0.4) & (across >= 1.5) & (down >= 0.9)


def text_fraction(
    gray: np.ndarray | None, tile: int = 16, min_run: int = 3, background: float = 0.0
) -> float:
    """Fraction of native-resolution tiles that look like lines of text on a flat background.

    A text tile: the background (the tile's median value, within one grey level or ``background`` times the tile's
    contrast, whichever is more) covers at least half of it, the ink (at least half the tile's contrast away from the
    background) at most 40 %, the contrast is at least 60 grey levels, and the ink is crossed several times per row
    and per column (strokes, not one shape's outline). Only tiles in horizontal runs of ``min_run`` or more text tiles
    count: text comes in lines, outlines of drawings do not.
    """
    if gray is None or min(gray.shape) < tile * min_run:
        return 0.0
    g = np.asarray(gray)
    if g.dtype != np.uint8:  # gray levels stay bytes (a view's native_gray); anything else is float32
        g = g.astype(np.float32, copy=False)
    spread_grid = tile_range(g, tile)
    n_rows, n_cols = spread_grid.shape
    texty = np.zeros(n_rows * n_cols, dtype=bool)
    # Only tiles with enough contrast can be text: the per-tile statistics below run on those alone.
    candidates = np.flatnonzero(spread_grid.reshape(-1) >= 60)
    if candidates.size:
        texty[candidates] = _text_tiles(g, tile, candidates, spread_grid.reshape(-1)[candidates], background)
    texty = texty.reshape(n_rows, n_cols)
    windows = np.ones((n_rows, n_cols - min_run + 1), dtype=bool)
    for k in range(min_run):
        windows &= texty[:, k : n_cols - min_run + 1 + k]
    in_line = np.zeros_like(texty)
    for k in range(min_run):
        in_line[:, k : n_cols - min_run + 1 + k] |= windows
    return float(in_line.mean())


def exact_flat_fraction(gray: np.ndarray | None, tile: int = 8) -> float:
    """Fraction of native-resolution tiles of one exact value (UI backgrounds; photos have sensor noise)."""
    if gray is None or min(gray.shape) < tile:
        return 0.0
    return float((tile_range(gray, tile) <= 0.5).mean())


def _row_medians(block: np.ndarray) -> np.ndarray:
    """Each row's median as a float32 column; of uint8 gray levels from a radix sort of each row (np.median's value,
    without its per-call cost on the small blocks the bar search reads)."""
    if block.dtype != np.uint8:
        return np.median(block, axis=1, keepdims=True).astype(np.float32)
    n = block.shape[1]
    lo, hi = (n - 1) // 2, n // 2
    ordered = np.sort(block, axis=1, kind="stable")  # radix: faster than a partition of each row
    return (ordered[:, lo : lo + 1].astype(np.float32) + ordered[:, hi : hi + 1]) * np.float32(0.5)


#: Rows of an edge region judged by :func:`_edge_band`'s first step; each further step judges twice as many.
_ROWS_PER_STEP = 8
#: How far a text tile's background may stray from its median in the text layer, as a share of the tile's contrast:
#: a JPEG's ringing around the strokes of a re-saved screenshot grows with the strokes' contrast and stays within it
#: (window chrome bars keep the strict one grey level). Calibrated on bench/scrape_scale.py's re-saved screenshots.
TEXT_BACKGROUND = 0.05
#: The text layer also reads the detail level of files it shrinks to at most this share of their size (text
#: softened by an upscale of a third or more; below that the two scales see the same strokes).
DETAIL_TEXT_SHARE = 0.75


def _edge_band(region: np.ndarray, min_rows: int = 12, gap: int = 8) -> np.ndarray | None:
    """The bar at the start of ``region`` (rows from the image edge inwards), or None.

    A bar: at least ``min_rows`` rows from the edge whose pixels are mostly (half or more) one flat colour, ended by
    ``gap`` rows that are not (it gives way to content before the region ends: a page background reaching the whole
    region is not a bar), with its background present across the width (in at least 6 of 8 column segments: a
    picture's white margin around a figure is not a bar).
    """
    end, run = 0, 0
    meds = []
    # rows are judged a block at a time from the edge: most images end the walk within their first rows, and a
    # walk that goes on (a sky, a page) takes ever larger blocks
    start, step = 0, _ROWS_PER_STEP
    while start < region.shape[0]:
        block = region[start : start + step]
        med = _row_medians(block)
        meds.append(med)
        flat_rows = (np.abs(block - med) <= 2).mean(axis=1) >= 0.5
        for i, flat in enumerate(flat_rows.tolist(), start):
            if flat:
                end, run = i + 1, 0
                continue
            run += 1
            if run >= gap:
                break
        if run >= gap:
            break
        start, step = start + step, 2 * step
    if end < min_rows or run < gap:
        return None
    med = np.concatenate(meds)
    band = region[:end]
    background = np.abs(band - np.median(med[:end])) <= 2
    segments = np.array_split(background, 8, axis=1)
    if sum(float(seg.mean()) >= 0.3 for seg in segments) < 6:
        return None
    return band


def chrome_bands(gray: Any) -> dict[str, float]:
    """Window chrome at the top and bottom edges (title, menu, tool and status bars, task bars, filmstrip strips):
    per edge, the share of text-like tiles (single tiles, not lines: menu words are short) in its bar; 0 without a
    bar. Read at decoded resolution, where small UI text still has its strokes, on the edge regions only.

    ``gray`` is a 2-D array or a PIL ``L`` image; of an image only the two edge regions are converted.
    """
    if isinstance(gray, np.ndarray):
        h, w = gray.shape
    else:
        w, h = gray.size
    cap = max(16, min(int(0.2 * h), 200))
    out = {}
    for edge in ("top", "bottom"):
        if w < 48:
            out[edge] = 0.0
            continue
        region = _edge_region(gray, edge, cap)
        band = _edge_band(region)
        if band is None:
            out[edge] = 0.0
            continue
        out[edge] = text_fraction(band if edge == "top" else band[::-1], min_run=1)
    return out


def _edge_region(gray: Any, edge: str, cap: int) -> np.ndarray:
    """The ``cap`` rows at ``edge``, ordered from the image edge inwards (float32 of an array, uint8 of an image)."""
    if isinstance(gray, np.ndarray):
        g = gray if edge == "top" else gray[::-1]
        return np.asarray(g[:cap], dtype=np.float32)
    w, h = gray.size
    box = (0, 0, w, min(cap, h)) if edge == "top" else (0, max(0, h - cap), w, h)
    region = np.asarray(gray.crop(box), dtype=np.uint8)  # gray levels: the measures are exact on bytes
    return region if edge == "top" else region[::-1]


def pixel_features(view: Any) -> dict[str, Any]:
    """The pixel-structure features of one view (see module docstring)."""
    native = view.native_gray
    luma = view.source_luma() if hasattr(view, "source_luma") else None
    bands = chrome_bands(luma if luma is not None else view.gray)
    edge = max(bands, key=lambda k: bands[k])
    return {
        "ui_exact_flat": round(exact_flat_fraction(native), 4),
        "ui_edges": round(straight_edges(view.gray), 4),
        "ui_text": round(
            max(text_fraction(crop, background=TEXT_BACKGROUND) for crop in _text_crops(view)), 4
        ),
        "ui_chrome": round(bands[edge], 4),
        "ui_chrome_edge": edge if bands[edge] > 0 else None,
    }


def _text_crops(view: Any) -> list[np.ndarray | None]:
    """Where the text layer looks: the native crop, and for a file well above the detail level (an upscaled
    screenshot's text is soft at its own resolution) the same centre crop of the detail level."""
    crops = [view.native_gray]
    detail = getattr(view, "detail", None)
    if (
        detail is not None
        and view.native_gray is not None
        and max(detail.size) <= DETAIL_TEXT_SHARE * max(view.width, view.height)
    ):
        crops.append(centre_crop(detail))
    return crops


def pixel_score(f: dict[str, Any], params: dict[str, Any]) -> float:
    """Combine the pixel features into a 0..1-ish score (each feature saturates at its ``*_full`` value); the chrome
    bars count from ``chrome_min`` (photos and artwork stay under it)."""
    chrome = float(f.get("ui_chrome") or 0.0)
    parts = [
        params["w_flat"] * min(1.0, f["ui_exact_flat"] / params["exact_flat_full"]),
        params["w_edges"] * min(1.0, f["ui_edges"] / params["edges_full"]),
        params["w_text"] * min(1.0, f["ui_text"] / params["text_full"]),
        params["w_chrome"] * min(1.0, chrome / params["chrome_full"])
        if chrome >= params["chrome_min"]
        else 0.0,
    ]
    return float(sum(parts))


class ScreenshotCheck(ImageCheck):
    """Screen captures from metadata, file name, screen size and pixel structure (and CLIP when configured).

    Example::

        m = ScreenshotCheck().measure(view, ScreenshotCheck.defaults)
        m["ui_text"], m["screenshot_metadata"]
    """

    name = "screenshot"
    codes = ("screenshot",)
    version = 4
    defaults: ClassVar[dict[str, Any]] = {
        "threshold": 0.5,  # total score at which the finding fires
        "error_threshold": 1.0,  # ... and is an error
        "metadata_weight": 1.0,
        "filename_weight": 0.6,
        "resolution_weight": 0.1,  # weak: only counts when the pixel score is already >= resolution_needs_pixels
        "resolution_needs_pixels": 0.25,
        "clip_weight": 0.5,  # times the CLIP screenshot probability, when configured
        "w_flat": 0.2,  # weight of exact flat areas (ui_exact_flat), saturating at exact_flat_full
        "exact_flat_full": 0.4,
        "w_edges": 0.4,  # weight of long straight edges (ui_edges per 100 px), saturating at edges_full
        "edges_full": 1.0,
        "w_text": 0.5,  # weight of text lines (ui_text tile fraction), saturating at text_full
        "text_full": 0.01,
        # window chrome bars at the top / bottom edge (ui_chrome: their text-tile share): bench_dev photos and
        # artwork stay at or under 0.011, the menu, tool, status and task bars of screenshots reach 0.03-0.2
        "w_chrome": 0.6,
        "chrome_full": 0.03,
        "chrome_min": 0.02,
        # below this long side (thumbnail-sized) pixels alone give no verdict without chrome evidence: drawn line
        # art at 280 px looks like text strokes
        "small_side": 400,
    }

    def measure(self, view: Any, params: dict[str, Any]) -> Metrics:
        """Metadata and file-name hints, screen-size flag and the pixel features."""
        metrics: Metrics = dict(pixel_features(view))
        metrics["screenshot_metadata"] = metadata_hint(view.text, view.xmp, view.exif)
        metrics["screenshot_filename"] = filename_hint(view.filename)
        metrics["screen_size"] = is_screen_size(view.width, view.height)
        return metrics

    def judge(self, record: Any, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """A ``screenshot`` finding when the layers add up to the threshold; each layer named in the evidence."""
        m = record.metrics
        if "ui_text" not in m:
            return []
        pix = pixel_score(m, params)
        layers: dict[str, Any] = {"pixels": round(pix, 3)}
        chrome = float(m.get("ui_chrome") or 0.0) >= float(params["chrome_min"])
        if chrome:
            layers["chrome"] = f"{m.get('ui_chrome_edge')} bar"
        small = max(record.width, record.height) < int(params["small_side"])
        if small and not chrome:
            layers["pixels_not_counted"] = (
                f"thumbnail-sized ({record.width}x{record.height}) and no window chrome"
            )
            pix = 0.0
        score = pix
        if m.get("screenshot_metadata"):
            layers["metadata"] = m["screenshot_metadata"]
            score += float(params["metadata_weight"])
        if m.get("screenshot_filename"):
            layers["filename"] = m["screenshot_filename"]
            score += float(params["filename_weight"])
        if m.get("screen_size") and pix >= float(params["resolution_needs_pixels"]):
            layers["resolution"] = f"{record.width}x{record.height}"
            score += float(params["resolution_weight"])
        clip = clip_features(context).get(record.item.rel, {}).get("screenshot")
        if isinstance(clip, int | float):
            layers["clip"] = round(float(clip), 3)
            score += float(params["clip_weight"]) * float(clip)
        if score < float(params["threshold"]):
            return []
        evidence = {
            "metric": "screenshot_score",
            "screenshot_score": round(score, 3),
            "threshold": params["threshold"],
            "layers": layers,
            "features": {k: m.get(k) for k in ("ui_exact_flat", "ui_edges", "ui_text", "ui_chrome")},
        }
        severity = Severity.ERROR if score >= float(params["error_threshold"]) else Severity.WARNING
        named = ", ".join(k for k in layers if (k != "pixels" or pix > 0) and k != "pixels_not_counted")
        message = f"Looks like a screenshot (score {score:.2f} >= {params['threshold']}; {named})"
        return [Finding("screenshot", severity, message, evidence, record.item.rel)]


CHECKS = [ScreenshotCheck()]
