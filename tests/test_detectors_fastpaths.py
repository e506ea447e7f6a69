"""The screenshot check's fast pixel features equal straightforward reference implementations exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from curator.checks._imageops import tile_range, tile_view
from curator.checks.screenshot import (
    _longest_runs,
    _text_tiles,
    exact_flat_fraction,
    straight_edges,
    text_fraction,
)


def _ref_tile_range(a: np.ndarray, tile: int) -> np.ndarray:
    tiles = tile_view(np.asarray(a, dtype=np.float32), tile)
    return tiles.max(axis=(2, 3)) - tiles.min(axis=(2, 3))


def _ref_texty(gray: np.ndarray, tile: int = 16, background: float = 0.0) -> np.ndarray:
    """Every tile through np.median on floats: the definition the fast path must reproduce (rows x cols)."""
    t = tile_view(np.asarray(gray, dtype=np.float32), tile)
    n_rows, n_cols = t.shape[:2]
    t = t.reshape(n_rows * n_cols, tile, tile)
    flat = t.reshape(len(t), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    med = np.median(flat, axis=1)
    bg_share = (np.abs(flat - med[:, None]) <= np.maximum(1.0, background * spread)[:, None]).mean(axis=1)
    ink = (np.abs(t - med[:, None, None]) >= 0.5 * spread[:, None, None]).astype(np.int8)
    across = np.abs(np.diff(ink, axis=2)).sum(axis=(1, 2)) / tile
    down = np.abs(np.diff(ink, axis=1)).sum(axis=(1, 2)) / tile
    ink_share = ink.reshape(len(t), -1).mean(axis=1)
    texty = (bg_share >= 0.5) & (ink_share <= 0.4) & (spread >= 60) & (across >= 1.5) & (down >= 0.9)
    return texty.reshape(n_rows, n_cols)


def _ref_text_fraction(gray: np.ndarray, tile: int = 16, min_run: int = 3, background: float = 0.0) -> float:
    if min(gray.shape) < tile * min_run:
        return 0.0
    texty = _ref_texty(gray, tile, background)
    n_cols = texty.shape[1]
    in_line = np.zeros_like(texty)
    for start in range(n_cols - min_run + 1):
        run = texty[:, start : start + min_run].all(axis=1)
        in_line[:, start : start + min_run] |= run[:, None]
    return float(in_line.mean())


def _ref_straight_edges(
    gray: np.ndarray, min_fraction: float = 0.25, step: float = 24.0, flat: float = 2.0
) -> float:
    g = np.asarray(gray, dtype=np.float32)
    total = 0
    for a in (g, g.T):
        jump = np.abs(a[2:, :] - a[:-2, :]) >= step
        ok = jump[:, 1:] & (
            (np.abs(np.diff(a[:-2, :], axis=1)) <= flat) | (np.abs(np.diff(a[2:, :], axis=1)) <= flat)
        )
        lines = _longest_runs(ok) >= min_fraction * a.shape[1]
        total += int((lines & ~np.concatenate([[False], lines[:-1]])).sum())
    return 100.0 * total / float(sum(g.shape))


def _ui_image(seed: int) -> np.ndarray:
    """A screenshot-like gray image: flat panels, bars, lines of text, plus a noisy photo region."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (300, 260), 235)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 299, 24), fill=60)
    for row, ink in enumerate((20, 150, 160, 170, 175, 180)):  # contrasts from 215 down to 55 grey levels
        draw.text((10, 30 + 18 * row), "The quick brown fox jumps over 1234", fill=ink)
    draw.rectangle((20, 170, 97, 237), fill=120)  # a panel whose sides are just long enough to count as lines
    arr = np.asarray(img, dtype=np.float32).copy()
    arr[:, 150:] += rng.integers(
        -1, 2, (260, 150)
    )  # background off by one here and there: the median matters
    arr[242:, 150:] = rng.integers(0, 256, (18, 150))
    return arr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_features_equal_reference_on_integer_gray(seed: int) -> None:
    gray = _ui_image(seed)
    assert straight_edges(gray) > 0
    assert text_fraction(gray) > 0  # the fixture really has text lines, so the comparison means something
    assert text_fraction(gray) == _ref_text_fraction(gray)
    spread = _ref_tile_range(gray, 16).reshape(-1)
    every = np.arange(spread.size)
    assert np.array_equal(_text_tiles(gray, 16, every, spread) & (spread >= 60), _ref_texty(gray).reshape(-1))
    assert straight_edges(gray) == _ref_straight_edges(gray)
    assert np.array_equal(tile_range(gray, 8), _ref_tile_range(gray, 8))
    assert exact_flat_fraction(gray) == float((_ref_tile_range(gray, 8) <= 0.5).mean())


def test_fast_features_equal_reference_on_fractional_and_odd_sized_gray() -> None:
    rng = np.random.default_rng(7)
    gray = _ui_image(3)[:203, :157] + rng.uniform(0, 0.9, (203, 157)).astype(
        np.float32
    )  # not whole grey levels
    assert text_fraction(gray) == _ref_text_fraction(gray)
    assert straight_edges(gray) == _ref_straight_edges(gray)
    for tile in (8, 16):
        assert np.array_equal(tile_range(gray, tile), _ref_tile_range(gray, tile))


def _ref_variant_hashes(gray: np.ndarray) -> dict[str, str]:
    """Every variant hashed from its own array (the plain way: four reductions per hash kind)."""
    from curator.checks import hashing
    from curator.checks.near_duplicate import CROP_KEEP

    h, w = gray.shape
    dy, dx = round(h * (1 - CROP_KEEP) / 2), round(w * (1 - CROP_KEEP) / 2)
    crop = gray[dy : h - dy, dx : w - dx] if min(h - 2 * dy, w - 2 * dx) >= 9 else gray
    arrays = {"": gray, "_mirror": gray[:, ::-1], "_crop": crop, "_crop_mirror": crop[:, ::-1]}
    out = {}
    for suffix, arr in arrays.items():
        out[f"phash{suffix}"] = hashing.to_hex(hashing.phash(np.ascontiguousarray(arr)))
        out[f"dhash{suffix}"] = hashing.to_hex(hashing.dhash(np.ascontiguousarray(arr)))
    return out


@pytest.mark.parametrize("shape", [(341, 512), (512, 384), (97, 203), (512, 512)])
def test_mirror_hashes_from_flipped_reductions_equal_reference(shape: tuple[int, int]) -> None:
    from curator.checks.hashing import from_hex, popcount
    from curator.checks.near_duplicate import variant_hashes

    rng = np.random.default_rng(shape[0])
    smooth = Image.fromarray(rng.random((shape[0] // 8 + 2, shape[1] // 8 + 2)).astype(np.float32) * 255, "F")
    gray = np.asarray(smooth.resize((shape[1], shape[0]), Image.Resampling.BICUBIC), np.float32)
    gray = gray + rng.normal(0, 4, shape).astype(np.float32)
    fast, ref = variant_hashes(gray), _ref_variant_hashes(gray)
    assert fast.keys() == ref.keys()
    for key in fast:
        if "mirror" not in key:
            assert fast[key] == ref[key]
        else:  # Pillow rounds area-filter windows half up, so the mirror of a reduction can differ from the reduction
            # of the mirror by a pixel at a window edge: a near-zero coefficient may flip, a few bits at most
            assert int(popcount(from_hex([fast[key]]) ^ from_hex([ref[key]]))[0]) <= 3, key


def _ref_window_extreme(a: np.ndarray, size: int, fn: np.ufunc) -> np.ndarray:
    h, w = a.shape[-2] - size + 1, a.shape[-1] - size + 1
    out = np.empty((*a.shape[:-2], h, w), a.dtype)
    for y in range(h):
        for x in range(w):
            window = a[..., y : y + size, x : x + size].reshape((*a.shape[:-2], -1))
            out[..., y, x] = fn.reduce(window, axis=-1)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 9, 11])
def test_blur_window_extremes_by_doubling_equal_reference(size: int) -> None:
    from curator.checks.blur import _window_extreme

    a = np.random.default_rng(size).random((3, 19, 23)).astype(np.float32)
    for fn in (np.maximum, np.minimum):
        assert np.array_equal(_window_extreme(a, size, fn), _ref_window_extreme(a, size, fn))


def test_blur_tile_gather_equals_plain_crops() -> None:
    from curator.checks import blur

    gray = np.asarray(Image.fromarray(_ui_image(4).astype(np.uint8)), np.float32)
    tiles = blur.sample_tiles(gray, max_tiles=20)
    boxes = blur._tile_boxes(gray, blur.TILE, 20, 40.0)
    side, m = tiles.shape[1], blur._MARGIN
    assert len(tiles) == len(boxes) > 3
    for (x, y), tile in zip(boxes, tiles, strict=True):
        assert np.array_equal(tile, gray[y - m : y - m + side, x - m : x - m + side])


def test_gray_level_fast_paths_equal_the_float_definitions() -> None:
    """The loader hands the checks uint8 gray levels (native crop, detail level, edge bars); each measure on bytes
    equals the same measure on the float32 copy of them."""
    from curator.checks import blur
    from curator.checks.jpeg import blockiness
    from curator.checks.screenshot import chrome_bands

    levels = np.clip(_ui_image(5), 0, 255).astype(np.uint8)
    as_float = levels.astype(np.float32)
    assert text_fraction(levels) == text_fraction(as_float) > 0
    assert exact_flat_fraction(levels) == exact_flat_fraction(as_float)
    assert np.array_equal(tile_range(levels, 16), tile_range(as_float, 16))
    assert blockiness(levels) == blockiness(as_float)
    tiles_u8 = blur.sample_tiles(levels, max_tiles=20)
    tiles_f = blur.sample_tiles(as_float, max_tiles=20)
    assert tiles_u8.dtype == np.uint8 and np.array_equal(tiles_u8, tiles_f)
    assert blur.sharpness_profile(tiles_u8) == blur.sharpness_profile(tiles_f)
    # the analysis level (view.gray) is gray levels too: edges in int16, the Laplacian's variance from integer sums
    assert straight_edges(levels) == straight_edges(as_float) > 0
    photo = np.clip(rng_photo(120, 170), 0, 255).astype(np.uint8)
    for gray in (levels, photo):
        exact = np.asarray(gray, np.float64)
        lap = exact[1:-1, :-2] + exact[1:-1, 2:] + exact[:-2, 1:-1] + exact[2:, 1:-1] - 4 * exact[1:-1, 1:-1]
        assert blur.laplacian_variance(gray) == pytest.approx(float(lap.var()), rel=1e-12)
        assert blur.laplacian_variance(gray) == pytest.approx(
            blur.laplacian_variance(gray.astype(np.float32)), rel=1e-5
        )
    window = Image.fromarray(np.clip(rng_photo(260, 300), 0, 255).astype(np.uint8))
    ImageDraw.Draw(window).rectangle((0, 0, 299, 30), fill=235)
    ImageDraw.Draw(window).text((6, 10), "File  Edit  View  Image  Help", fill=20)
    bands = chrome_bands(window)
    assert bands["top"] > 0 and bands == chrome_bands(np.asarray(window, np.float32))


def rng_photo(h: int, w: int) -> np.ndarray:
    """Smooth random content with texture, no flat rows."""
    rng = np.random.default_rng(h * w)
    small = Image.fromarray((rng.random((h // 10 + 2, w // 10 + 2)) * 255).astype(np.float32), "F")
    smooth = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    return smooth + rng.normal(0, 6, (h, w)).astype(np.float32)


def test_edge_band_walked_in_blocks_equals_the_whole_region() -> None:
    """The bar search judges the edge rows a block at a time; the bar it finds is the one a walk over every row finds."""
    from curator.checks import screenshot

    rng = np.random.default_rng(3)
    for bar_rows in (0, 5, 7, 8, 9, 12, 16, 23, 24, 25, 47, 60, 150):
        region = rng.integers(0, 256, (200, 120)).astype(np.float32)
        region[:bar_rows] = 90.0
        region[:bar_rows, ::7] = 10.0  # text-like ink in the bar
        found = screenshot._edge_band(region)
        med = np.median(region, axis=1, keepdims=True)
        flat_rows = ((np.abs(region - med) <= 2).mean(axis=1) >= 0.5).tolist()
        end = 0
        for i, flat in enumerate(flat_rows):
            if not flat:
                break
            end = i + 1
        expected = end if end >= 12 else 0
        assert (0 if found is None else found.shape[0]) == expected, bar_rows


@pytest.mark.parametrize("n", [1, 2, 40, 99, 100, 101, 1234])
def test_blur_percentile_equals_numpy(n: int) -> None:
    from curator.checks.blur import _percentile

    values = np.random.default_rng(n).random(n).astype(np.float32)
    for q in (0.0, 50.0, 99.0, 100.0):
        assert _percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_byte_measures_equal_the_float_path_on_random_content(seed: int) -> None:
    """Noise, ramps and hard steps (every gradient a byte tile can have, and windows of every range): the blur
    orientation measure (integer gradients, looked-up magnitude and bin), the blockiness profile (clipped byte
    differences summed as integers) and the text tiles (doubled integers) equal their float32 paths."""
    from curator.checks import blur
    from curator.checks.jpeg import blockiness

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (6, 44, 44))
    ramps = np.cumsum(rng.integers(-60, 61, (6, 44, 44)), axis=1 + seed % 2)
    steps = np.where(rng.random((6, 44, 44)) < 0.5, 0, 255) if seed % 3 == 0 else noise // 2
    tiles = np.clip(np.concatenate([noise, ramps, steps]), 0, 255).astype(np.uint8)
    assert blur.sharpness_profile(tiles) == blur.sharpness_profile(tiles.astype(np.float32))
    assert blur.sharpness_profile(tiles)[1] is not None
    image = np.clip(rng_photo(96 + 8 * seed, 131) + 8 * ((np.arange(131) % 8) == 0), 0, 255).astype(np.uint8)
    assert blockiness(image) == blockiness(image.astype(np.float32))
    text = _text_image(seed)
    assert text_fraction(text) == text_fraction(text.astype(np.float32)) > 0
    # the text layer's tolerance (a share of each tile's contrast): bytes, floats and the reference agree
    buffer = io.BytesIO()
    Image.fromarray(text).save(buffer, "JPEG", quality=75)
    resaved = np.asarray(Image.open(buffer).convert("L"), dtype=np.uint8)  # ringing around every stroke
    for page in (text, resaved):
        for background in (0.03, 0.05, 0.1):
            fast = text_fraction(page, background=background)
            assert fast == text_fraction(page.astype(np.float32), background=background)
            assert fast == _ref_text_fraction(page, background=background) >= text_fraction(page)


def _text_image(seed: int) -> np.ndarray:
    """Lines of text over a page with a photo-like lower half: text tiles and non-text candidates both."""
    page = Image.fromarray(np.clip(rng_photo(200, 320), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 319, 99), fill=240 - 10 * seed)
    for row in range(5):
        draw.text((4, 4 + 18 * row), "The quick brown fox jumps over 13 lazy dogs" * 2, fill=20 + 5 * seed)
    return np.asarray(page, dtype=np.uint8)
