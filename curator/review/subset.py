"""Diverse subsets: when a concept has more images than it needs, keep the N that cover it best.

Greedy k-center (farthest-point) selection over image features: CLIP embeddings when the scan stored them (cosine
distance), else the 64-bit perceptual hashes of the detectors (normalised Hamming distance), else a perceptual
hash computed here from the file. Each candidate's distance to the chosen set is weighted by its quality (an item
with warnings counts for less), so among equally novel images the clean one wins. Duplicate-cluster keepers are
chosen first. Ties break on the relative path, so the result is deterministic.

Also: repeats that balance concepts (each concept seen about as often per epoch as the largest one).

Example::

    chosen = diverse_subset(records, 100, forced={"10_cat/keeper.png"})
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from curator.findings import Severity
from curator.scan.results import ItemRecord

#: metrics that hold a CLIP image embedding (list of floats), in order of preference
EMBEDDING_METRICS = ("clip_embedding", "embedding")


def _hex_bits(text: str) -> np.ndarray | None:
    try:
        value = int(text, 16)
    except ValueError:
        return None
    bits = len(text) * 4
    return np.array([(value >> i) & 1 for i in range(bits)], dtype=np.float32)


def _hash_features(record: ItemRecord) -> np.ndarray | None:
    """Concatenated bits of every hex-string metric whose name contains 'hash' (sorted by name)."""
    parts = []
    for name in sorted(record.metrics):
        v = record.metrics[name]
        if "hash" in name and "mirror" not in name and isinstance(v, str) and 8 <= len(v) <= 64:
            bits = _hex_bits(v)
            if bits is not None:
                parts.append(bits)
    return np.concatenate(parts) if parts else None


def _file_hash_features(record: ItemRecord) -> np.ndarray:
    """A pHash + dHash computed from the file (when the scan stored none); zeros when unreadable."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(record.item.path) as opened:
            rgb = opened.convert("RGB")
            text = str(imagehash.phash(rgb)) + str(imagehash.dhash(rgb))
    except Exception:  # an unreadable file is still a point; it is simply far from nothing in particular
        return np.zeros(128, dtype=np.float32)
    bits = _hex_bits(text)
    assert bits is not None
    return bits


def features(records: Sequence[ItemRecord]) -> tuple[np.ndarray, str]:
    """A feature matrix (one row per record) and the distance it is meant for: ``cosine`` or ``hamming``."""
    for name in EMBEDDING_METRICS:
        vectors = [r.metrics.get(name) for r in records]
        if all(isinstance(v, list) and v for v in vectors) and len({len(v) for v in vectors}) == 1:  # type: ignore[arg-type]
            matrix = np.asarray(vectors, dtype=np.float32)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            return matrix / np.maximum(norms, 1e-12), "cosine"
    found = [_hash_features(r) for r in records]
    rows = [row for row in found if row is not None]
    if len(rows) < len(found) or len({row.shape for row in rows}) > 1:
        rows = [_file_hash_features(r) for r in records]
    return np.stack(rows) if rows else np.zeros((0, 1), np.float32), "hamming"


def quality_weight(record: ItemRecord) -> float:
    """How much an item's novelty counts: 1.0 clean, 0.95 with info findings, 0.75 with warnings, 0.5 with errors."""
    worst = record.worst
    if worst is None:
        return 1.0
    return {Severity.INFO: 0.95, Severity.WARNING: 0.75, Severity.ERROR: 0.5}[worst]


def _distances(matrix: np.ndarray, index: int, kind: str) -> np.ndarray:
    if kind == "cosine":
        return np.clip(1.0 - matrix @ matrix[index], 0.0, 2.0)
    return np.abs(matrix - matrix[index]).mean(axis=1)


def diverse_subset(records: Sequence[ItemRecord], size: int, forced: Collection[str] = ()) -> list[str]:
    """The relative paths of at most ``size`` records that cover the set best (greedy k-center, quality-weighted),
    in the records' order. ``forced`` paths are chosen first (all of them, up to ``size``)."""
    records = sorted(records, key=lambda r: r.item.rel)
    if size >= len(records):
        return [r.item.rel for r in records]
    if size <= 0:
        return []
    matrix, kind = features(records)
    weights = np.array([quality_weight(r) for r in records], dtype=np.float64)
    rels = [r.item.rel for r in records]
    seeds = [i for i, rel in enumerate(rels) if rel in forced]
    if len(seeds) > size:  # more keepers than room: choose among the keepers
        inner = diverse_subset([records[i] for i in seeds], size)
        return [rel for rel in rels if rel in set(inner)]
    if not seeds:  # start from the medoid: the most typical image, best quality on ties
        total = np.array([_distances(matrix, i, kind).sum() for i in range(len(records))])
        seeds = [int(np.lexsort((-weights, total))[0])]
    nearest = np.full(len(records), np.inf)
    for index in seeds:
        nearest = np.minimum(nearest, _distances(matrix, index, kind))
    chosen = list(seeds)
    while len(chosen) < size:
        score = nearest * weights
        score[chosen] = -1.0
        # argmax returns the first maximum: records are sorted by path, so ties are deterministic
        pick = int(np.argmax(score))
        chosen.append(pick)
        nearest = np.minimum(nearest, _distances(matrix, pick, kind))
    picked = set(chosen)
    return [rel for i, rel in enumerate(rels) if i in picked]


def balanced_repeats(counts: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Repeats per concept so that each is seen about as often per epoch as the most-seen one.

    ``counts`` maps concept -> (images kept, current repeats). The target is the largest images x repeats; each
    concept gets round(target / images), at least 1.
    """
    live = {name: (n, r) for name, (n, r) in counts.items() if n > 0}
    if not live:
        return {name: r for name, (_, r) in counts.items()}
    target = max(n * r for n, r in live.values())
    out = {name: r for name, (_, r) in counts.items()}
    out.update({name: max(1, round(target / n)) for name, (n, _) in live.items()})
    return out
