"""Small numpy image operations shared by the detectors (pure functions on float arrays; no I/O).

Example::

    >>> import numpy as np
    >>> box_filter_1d(np.ones((4, 4), np.float32), 3, axis=1).shape
    (4, 4)
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def box_filter_1d(arr: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Mean over a window of ``size`` samples along ``axis`` (edges replicated), same shape as ``arr``."""
    a = np.asarray(arr, dtype=np.float64)
    pad = [(0, 0)] * a.ndim
    pad[axis] = (size // 2, size - 1 - size // 2)
    padded = np.pad(a, pad, mode="edge")
    csum = np.cumsum(padded, axis=axis)
    zero_shape = list(csum.shape)
    zero_shape[axis] = 1
    csum = np.concatenate([np.zeros(zero_shape), csum], axis=axis)
    n = a.shape[axis]
    hi = np.take(csum, np.arange(size, size + n), axis=axis)
    lo = np.take(csum, np.arange(0, n), axis=axis)
    return ((hi - lo) / size).astype(np.float32)


def laplacian(gray: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the interior pixels (shape reduced by 2 in each dimension)."""
    g = np.asarray(gray, dtype=np.float32)
    return g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]


def resize_gray(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-filtered resize of a float gray image to ``size`` = (width, height)."""
    img = Image.fromarray(np.asarray(gray, dtype=np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float32)


def tile_view(arr: np.ndarray, tile: int) -> np.ndarray:
    """``arr`` (HxW[xC]) cropped to whole tiles and reshaped to (rows, cols, tile, tile[, C])."""
    h, w = arr.shape[0] // tile * tile, arr.shape[1] // tile * tile
    a = arr[:h, :w]
    shape = (h // tile, tile, w // tile, tile) + a.shape[2:]
    return a.reshape(shape).swapaxes(1, 2)


def tile_range(arr: np.ndarray, tile: int) -> np.ndarray:
    """max - min of each whole ``tile`` x ``tile`` tile of a HxW array, as float32.

    The tile's rows are reduced first (element-wise across whole image rows), then its columns through ``tile``
    strided slices: numpy is slow at reducing many short contiguous axes, and this is exact. Integer input (gray
    levels) is reduced in its own type, a quarter of the bytes of float32.
    """
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32, copy=False)
    h, w = a.shape[0] // tile * tile, a.shape[1] // tile * tile
    bands = a[:h, :w].reshape(h // tile, tile, w)
    band_max = bands.max(axis=1)
    band_min = bands.min(axis=1)
    tile_max = np.maximum.reduce([band_max[:, k::tile] for k in range(tile)])
    tile_min = np.minimum.reduce([band_min[:, k::tile] for k in range(tile)])
    return tile_max.astype(np.float32, copy=False) - tile_min.astype(np.float32, copy=False)
