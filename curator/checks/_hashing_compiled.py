"""The multi-index Hamming search of :func:`curator.checks.hashing.hamming_pairs`, compiled with numba (the ``numba``
extra): the same chunks, probes and answer, with the candidates of each probe checked in a tight loop instead of
materialised as index arrays, and the queries split over the cores.

Imported only when a search is large enough to need it (see ``hashing.COMPILED_FROM``) and numba is installed; the
compiled code is cached beside this file, so only the first search on a machine pays for compiling it.

A pair is reported once, by the first chunk whose probes reach it (a later chunk skips a pair that an earlier chunk's
radius already covers), so no deduplication pass is needed. Each chunk is searched with the queries in order of their
value in it, so the buckets its probes read follow each other in memory instead of being read at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange, uint64

_M1 = uint64(0x5555555555555555)
_M2 = uint64(0x3333333333333333)
_M4 = uint64(0x0F0F0F0F0F0F0F0F)
_H01 = uint64(0x0101010101010101)


@njit(inline="always", cache=True)
def _popcount(x: Any) -> int:
    x = x - ((x >> uint64(1)) & _M1)
    x = (x & _M2) + ((x >> uint64(2)) & _M2)
    x = (x + (x >> uint64(4))) & _M4
    return int((x * _H01) >> uint64(56))


@njit(parallel=True, cache=True)
def _search_blocks(
    queries: np.ndarray,  # uint64 (n,)
    qperm: np.ndarray,  # int64 (n,): the queries in order of their value in chunk c (neighbouring probes)
    c: int,  # the chunk searched
    sorted_keys: np.ndarray,  # uint64 (chunks, n): keys in each chunk's bucket order
    order: np.ndarray,  # int32 (chunks, n): item index of each sorted key
    starts: np.ndarray,  # int64 (chunks, buckets + 1): CSR offsets per chunk value
    shifts: np.ndarray,  # uint64 (chunks,)
    fields: np.ndarray,  # uint64 (chunks,)
    masks: np.ndarray,  # uint64 (masks of chunk c,)
    radius: int,
    max_distance: int,
    symmetric: bool,
    block_lo: np.ndarray,  # int64 (blocks,): first position in qperm of each block
    block_hi: np.ndarray,  # int64 (blocks,): one past its last
    block_off: np.ndarray,  # int64 (blocks,): where its rows go in the output
    block_cap: np.ndarray,  # int64 (blocks,): how many rows it may write
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    total = 0
    for b in range(block_cap.size):
        total += block_cap[b]
    out_i = np.empty(total, np.int64)
    out_j = np.empty(total, np.int64)
    out_d = np.empty(total, np.int64)
    found = np.zeros(block_cap.size, np.int64)
    for b in prange(block_cap.size):
        written = 0
        base = block_off[b]
        cap = block_cap[b]
        for p in range(block_lo[b], block_hi[b]):
            i = qperm[p]
            q = queries[i]
            qc = (q >> shifts[c]) & fields[c]
            for m in range(masks.size):
                key = np.int64(qc ^ masks[m])
                for s in range(starts[c, key], starts[c, key + 1]):
                    j = np.int64(order[c, s])
                    if j == i or (symmetric and j < i):
                        continue
                    x = q ^ sorted_keys[c, s]
                    d = _popcount(x)
                    if d > max_distance:
                        continue
                    seen = False  # an earlier chunk's probes reached this pair already
                    for e in range(c):
                        if _popcount((x >> shifts[e]) & fields[e]) <= radius:
                            seen = True
                            break
                    if seen:
                        continue
                    if written < cap:
                        out_i[base + written] = i
                        out_j[base + written] = j
                        out_d[base + written] = d
                    written += 1
        found[b] = written
    return out_i, out_j, out_d, found


def search(
    keys: np.ndarray,
    queries: list[np.ndarray],
    bounds: np.ndarray,
    masks: list[np.ndarray],
    radius: int,
    max_distance: int,
    symmetric: list[bool],
) -> np.ndarray:
    """Rows ``(i, j, distance, k)`` of every query ``k`` of item ``i`` within ``max_distance`` of key ``j``, sorted;
    ``bounds`` are the chunks' bit boundaries, ``masks[c]`` chunk ``c``'s probe masks (see ``hashing``)."""
    h = np.ascontiguousarray(keys, dtype=np.uint64)
    n = h.size
    n_chunks = len(bounds) - 1
    widths = np.diff(bounds).astype(np.int64)
    shifts = np.asarray(bounds[:-1], dtype=np.uint64)
    fields = np.array([(1 << int(w)) - 1 for w in widths], dtype=np.uint64)
    buckets = 1 << int(widths.max())
    order = np.empty((n_chunks, n), np.int32)
    sorted_keys = np.empty((n_chunks, n), np.uint64)
    starts = np.zeros((n_chunks, buckets + 1), np.int64)
    for c in range(n_chunks):
        vals = ((h >> shifts[c]) & fields[c]).astype(np.int64)
        order[c] = np.argsort(vals, kind="stable")
        sorted_keys[c] = h[order[c]]
        starts[c, 1:] = np.cumsum(np.bincount(vals, minlength=buckets))
    blocks = max(1, min(n, 256))
    edges = np.linspace(0, n, blocks + 1).round().astype(np.int64)
    lo, hi = edges[:-1], edges[1:]
    room = 64
    rows = []
    for k, query in enumerate(queries):
        q = np.ascontiguousarray(query, dtype=np.uint64)
        for c in range(n_chunks):
            qperm = np.argsort((q >> shifts[c]) & fields[c], kind="stable").astype(np.int64)
            tables = (q, qperm, c, sorted_keys, order, starts, shifts, fields, masks[c].astype(np.uint64))
            limits = (int(radius), int(max_distance), bool(symmetric[k]))
            cap = np.full(blocks, room, np.int64)
            out_i, out_j, out_d, found = _search_blocks(
                *tables, *limits, lo, hi, np.arange(blocks) * room, cap
            )
            fitting = [np.arange(b * room, b * room + found[b]) for b in np.flatnonzero(found <= cap)]
            keep = np.concatenate(fitting) if fitting else np.zeros(0, np.int64)
            parts = [(out_i[keep], out_j[keep], out_d[keep])]
            # blocks with more pairs than room: searched again with room for exactly what they found
            over = np.flatnonzero(found > cap)
            if over.size:
                caps = found[over]
                offs = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64)
                again = _search_blocks(*tables, *limits, lo[over], hi[over], offs, caps)
                parts.append(again[:3])
            for i_part, j_part, d_part in parts:
                rows.append(np.stack([i_part, j_part, d_part, np.full(i_part.size, k, np.int64)], axis=1))
    out = np.concatenate(rows) if rows else np.zeros((0, 4), np.int64)
    return out[np.lexsort(out.T[::-1])]
