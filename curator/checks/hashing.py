"""Perceptual hashes and a fast Hamming-distance pair search (pure numpy).

- :func:`phash`: 64-bit DCT hash whose bits are the signs of the 8x8 lowest DCT frequencies (the DC bit is always 0).
  Mirroring negates the coefficients of odd horizontal frequency, so ``phash(mirror) == phash ^ MIRROR_MASK`` (up to
  exact zeros).
- :func:`dhash`: 64-bit gradient hash (is each pixel brighter than its right neighbour, 9x8 grid).
- :func:`hamming_pairs`: every pair within a Hamming distance, also between variants (mirror, crop), by multi-index hashing:
  split the 64 bits into m chunks; a pair within distance t has some chunk within t // m (pigeonhole), so probing
  every chunk value within that radius finds all candidates exactly, and a vectorised popcount verifies them.

Example::

    >>> import numpy as np
    >>> h = np.array([0, 1, 0xFFFF], dtype=np.uint64)
    >>> hamming_pairs(h, 1)[:, :2].tolist()
    [[0, 1]]
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from PIL import Image

HASH_SIZE = 8
_DCT_SIZE = 32


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(_DCT_SIZE)
#: Bits of odd horizontal frequency (bit index = 8 * v + u, u the horizontal frequency).
MIRROR_MASK = np.uint64(sum(1 << (8 * v + u) for v in range(8) for u in range(8) if u % 2 == 1))


def as_float_image(gray: np.ndarray | Image.Image) -> Image.Image:
    """A gray array as a float (``F``) image; an image as it is."""
    if isinstance(gray, Image.Image):
        return gray
    return Image.fromarray(np.asarray(gray, dtype=np.float32), mode="F")


def _small(
    gray: np.ndarray | Image.Image, size: tuple[int, int], box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    return np.asarray(as_float_image(gray).resize(size, Image.Resampling.BOX, box=box), dtype=np.float64)


def _pack(bits: np.ndarray) -> int:
    flat = bits.reshape(-1).astype(np.uint64)
    return int((flat << np.arange(flat.size, dtype=np.uint64)).sum())


def phash(gray: np.ndarray) -> int:
    """64-bit DCT sign hash of a gray image (see module docstring)."""
    return phash_of_small(_small(gray, (_DCT_SIZE, _DCT_SIZE)))


def phash_of_small(small: np.ndarray) -> int:
    """:func:`phash` of an image already reduced to 32x32 (so a mirror can reuse its flipped reduction)."""
    coeffs = (_DCT @ small @ _DCT.T)[:HASH_SIZE, :HASH_SIZE]  # [v, u]
    bits = coeffs > 0
    bits[0, 0] = False
    return _pack(bits)


def dhash(gray: np.ndarray) -> int:
    """64-bit horizontal-gradient hash of a gray image."""
    return dhash_of_small(_small(gray, (HASH_SIZE + 1, HASH_SIZE)))


def dhash_of_small(small: np.ndarray) -> int:
    """:func:`dhash` of an image already reduced to 9x8."""
    return _pack(small[:, 1:] > small[:, :-1])


def reductions(
    gray: np.ndarray | Image.Image, box: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The 32x32 and 9x8 area reductions :func:`phash` and :func:`dhash` start from, of ``gray`` (an array or an ``F``
    image) or of its region ``box`` (left, top, right, bottom: equal to reducing the cropped array).

    A mirror variant hashes these flipped instead of reducing again (see ``near_duplicate.variant_hashes``).
    """
    img = as_float_image(gray)
    return _small(img, (_DCT_SIZE, _DCT_SIZE), box), _small(img, (HASH_SIZE + 1, HASH_SIZE), box)


def to_hex(value: int) -> str:
    """A 64-bit hash as 16 hex digits."""
    return f"{value:016x}"


def from_hex(values: list[str]) -> np.ndarray:
    """Hex hashes -> uint64 array (16 digits each, as :func:`to_hex` writes them, parsed in one pass)."""
    if values and all(len(v) == 16 for v in values):
        try:
            return np.frombuffer(bytes.fromhex("".join(values)), dtype=">u8").astype(np.uint64)
        except ValueError:
            pass  # not hex after all: the per-value parse below says which
    return np.array([int(v, 16) for v in values], dtype=np.uint64)


def popcount(x: np.ndarray) -> np.ndarray:
    """Bits set per element of a uint64 array."""
    return np.bitwise_count(x).astype(np.int64)


def _masks_within(radius: int, bits: int = 16) -> np.ndarray:
    out = [0]
    for r in range(1, radius + 1):
        out += [sum(1 << b for b in combo) for combo in combinations(range(bits), r)]
    return np.array(out, dtype=np.int64)


def chunks_for(max_distance: int) -> int:
    """How many chunks the 64 bits are split into for a search radius: 4 (16 bits, one flipped bit per chunk probed)
    up to distance 7, 5 (13 bits, one flip) up to 9, else 4 with more flips (slower)."""
    if max_distance <= 7:
        return 4
    if max_distance <= 9:
        return 5
    return 4


#: From this many keys the search runs compiled (the ``numba`` extra) when it is installed: below it the numpy search
#: takes about a second or less, and importing numba and loading the compiled code costs about half a second.
COMPILED_FROM = 100_000


def compiled_available() -> bool:
    """True when the compiled search can run (numba is installed)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def hamming_pairs(
    keys: np.ndarray,
    max_distance: int,
    queries: list[np.ndarray] | None = None,
    *,
    engine: str = "auto",
) -> np.ndarray:
    """Every (query of item i, key of item j), i != j, within ``max_distance`` bits.

    ``queries`` are arrays aligned with ``keys`` (query ``k`` of item ``i`` is ``queries[k][i]``: the hash of a
    variant of item i, such as its mirror); by default ``[keys]``. Returns int64 rows ``(i, j, distance, k)``, sorted;
    for ``queries[k] is keys`` only ``i < j`` (the relation is symmetric). Exact: no pair is missed; the time grows with
    the number of probe masks per chunk (see :func:`chunks_for`) and, past a few hundred thousand keys, with the square
    of their number (the candidates the probes find).

    ``engine``: ``"numpy"``, ``"compiled"`` (numba; ImportError without it) or ``"auto"`` (compiled from
    :data:`COMPILED_FROM` keys when numba is installed). Both give the same rows.
    """
    h = np.asarray(keys, dtype=np.uint64)
    n = h.size
    queries = [h] if queries is None else [np.asarray(q, dtype=np.uint64) for q in queries]
    if n < 2:
        return np.zeros((0, 4), dtype=np.int64)
    n_chunks = chunks_for(max_distance)
    bounds = np.linspace(0, 64, n_chunks + 1).round().astype(int)
    if engine == "compiled" or (engine == "auto" and n >= COMPILED_FROM and compiled_available()):
        from curator.checks import _hashing_compiled

        radius = max_distance // n_chunks
        probes = [_masks_within(radius, int(hi - lo)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        halves = [q is h or bool(np.array_equal(q, h)) for q in queries]
        return _hashing_compiled.search(h, queries, bounds, probes, radius, max_distance, halves)
    idx = np.arange(n)
    radius = max_distance // n_chunks
    packable = n * n * 65 * len(queries) < 2**62
    found = []
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        width = int(hi - lo)
        masks = _masks_within(radius, width)
        shift, field = np.uint64(lo), np.uint64((1 << width) - 1)
        earlier = [
            (np.uint64(a), np.uint64((1 << int(b - a)) - 1))
            for a, b in zip(bounds[:c], bounds[1 : c + 1], strict=True)
        ]
        vals = ((h >> shift) & field).astype(np.int64)
        order = np.argsort(vals, kind="stable")
        counts = np.bincount(vals, minlength=1 << width)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for k, q in enumerate(queries):
            symmetric = q is h or np.array_equal(q, h)
            qvals = ((q >> shift) & field).astype(np.int64)
            for mask in masks:
                key = qvals ^ mask
                cnt = counts[key]
                total = int(cnt.sum())
                if total == 0:
                    continue
                qi = np.repeat(idx, cnt)
                first = np.cumsum(cnt) - cnt
                j = order[np.repeat(starts[key] - first, cnt) + np.arange(total)]
                keep = qi < j if symmetric else qi != j
                qi, j = qi[keep], j[keep]
                diff = q[qi] ^ h[j]
                dist = popcount(diff)
                ok = np.flatnonzero(dist <= max_distance)
                if earlier and ok.size:  # a pair an earlier chunk's probes reach was found there, once
                    near = diff[ok]
                    first_here = np.ones(ok.size, dtype=bool)
                    for e_shift, e_field in earlier:
                        first_here &= popcount((near >> e_shift) & e_field) > radius
                    ok = ok[first_here]
                if ok.size:
                    qi, j, dist = qi[ok], j[ok], dist[ok]
                    if packable:  # one int64 per row, in the rows' sort order
                        found.append(((qi * n + j) * 65 + dist) * len(queries) + k)
                    else:
                        found.append(np.stack([qi, j, dist, np.full(qi.size, k)], axis=1))
    if not found:
        return np.zeros((0, 4), dtype=np.int64)
    if not packable:
        return np.unique(np.concatenate(found), axis=0)
    packed = np.sort(np.concatenate(found))
    rest, k_col = np.divmod(packed, len(queries))
    ij, d = np.divmod(rest, 65)
    i, j = np.divmod(ij, n)
    return np.stack([i, j, d, k_col], axis=1).astype(np.int64)
