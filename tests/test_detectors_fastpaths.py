"""The screenshot check's fast pixel features equal straightforward reference implementations exactly."""

from __future__ import annotations

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


def _ref_texty(gray: np.ndarray, tile: int = 16) -> np.ndarray:
    """Every tile through np.median on floats: the definition the fast path must reproduce (rows x cols)."""
    t = tile_view(np.asarray(gray, dtype=np.float32), tile)
    n_rows, n_cols = t.shape[:2]
    t = t.reshape(n_rows * n_cols, tile, tile)
    flat = t.reshape(len(t), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    med = np.median(flat, axis=1)
    bg_share = (np.abs(flat - med[:, None]) <= 1.0).mean(axis=1)
    ink = (np.abs(t - med[:, None, None]) >= 0.5 * spread[:, None, None]).astype(np.int8)
    across = np.abs(np.diff(ink, axis=2)).sum(axis=(1, 2)) / tile
    down = np.abs(np.diff(ink, axis=1)).sum(axis=(1, 2)) / tile
    ink_share = ink.reshape(len(t), -1).mean(axis=1)
    texty = (bg_share >= 0.5) & (ink_share <= 0.4) & (spread >= 60) & (across >= 1.5) & (down >= 0.9)
    return texty.reshape(n_rows, n_cols)


def _ref_text_fraction(gray: np.ndarray, tile: int = 16, min_run: int = 3) -> float:
    if min(gray.shape) < tile * min_run:
        return 0.0
    texty = _ref_texty(gray, tile)
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
