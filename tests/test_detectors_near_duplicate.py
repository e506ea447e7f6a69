"""near_duplicate: resized + re-encoded, cropped and mirrored copies cluster with their original; unrelated images
do not; the keeper is the best copy; exact copies are left to exact_duplicate; the pair search is exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _detector_images import photo, record_for, save, window_screenshot
from PIL import Image

from curator.checks import hashing
from curator.checks.base import CheckContext
from curator.checks.near_duplicate import DupHashes, NearDuplicates
from curator.scan.results import ScanSettings

HASHES = DupHashes()
CHECK = NearDuplicates()


def _variants(tmp_path: Path) -> dict[str, Path]:
    original = photo(11, (640, 480))
    w, h = original.size
    paths = {
        "original.png": save(original, tmp_path / "original.png"),
        "small.jpg": save(
            original.resize((448, 336), Image.Resampling.LANCZOS), tmp_path / "small.jpg", quality=80
        ),
        "crop.png": save(original.crop((w // 20, h // 20, w - w // 20, h - h // 20)), tmp_path / "crop.png"),
        "mirror.png": save(
            original.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((600, 450)), tmp_path / "mirror.png"
        ),
        "other.png": save(photo(12, (640, 480)), tmp_path / "other.png"),
        "other2.png": save(window_screenshot((640, 480)), tmp_path / "other2.png"),
    }
    return paths


def _run(records: list) -> list:
    return CHECK.run(records, CHECK.defaults, CheckContext(settings=ScanSettings(), records=records))


def test_variants_cluster_with_keeper_and_evidence(tmp_path: Path) -> None:
    records = [record_for(p, [HASHES], rel=name) for name, p in _variants(tmp_path).items()]
    found = {f.path: f for f in _run(records)}
    assert set(found) == {"small.jpg", "crop.png", "mirror.png"}
    for f in found.values():
        assert f.code == "near_duplicate"
        assert f.evidence["keeper"] == "original.png"  # the largest copy
        assert f.evidence["cluster_size"] == 4
        assert f.evidence["phash"] <= f.evidence["thresholds"]["max_phash"]
    assert found["mirror.png"].evidence["mirrored"] is True
    assert found["small.jpg"].evidence["mirrored"] is False


def test_exact_copies_are_not_reported_twice(tmp_path: Path) -> None:
    paths = _variants(tmp_path)
    shutil.copy(paths["original.png"], tmp_path / "copy.png")
    records = [record_for(p, [HASHES], rel=name) for name, p in paths.items()]
    records.append(record_for(tmp_path / "copy.png", [HASHES], rel="copy.png"))
    paths_found = {f.path for f in _run(records)}
    assert "copy.png" not in paths_found and "original.png" not in paths_found


def test_mirror_hash_is_a_bit_flip() -> None:
    gray = np.asarray(photo(3).convert("L"), np.float32)
    flipped = hashing.phash(gray[:, ::-1])
    assert bin(hashing.phash(gray) ^ int(hashing.MIRROR_MASK) ^ flipped).count("1") <= 2


def test_hamming_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=150, dtype=np.int64).view(np.uint64)
    near = base.copy()
    for i in range(len(near)):
        for bit in rng.choice(64, int(rng.integers(0, 12)), replace=False):
            near[i] ^= np.uint64(1 << int(bit))
    keys = np.concatenate([base, near])
    mirror = keys ^ hashing.MIRROR_MASK
    for t in (3, 7, 9, 11):
        got = hashing.hamming_pairs(keys, t, [keys, mirror])
        d_plain = hashing.popcount(keys[:, None] ^ keys[None, :])
        d_mirror = hashing.popcount(mirror[:, None] ^ keys[None, :])
        n = len(keys)
        want = {
            (i, j, int(d_plain[i, j]), 0) for i in range(n) for j in range(i + 1, n) if d_plain[i, j] <= t
        }
        want |= {
            (i, j, int(d_mirror[i, j]), 1)
            for i in range(n)
            for j in range(n)
            if i != j and d_mirror[i, j] <= t
        }
        assert {tuple(r) for r in got.tolist()} == want


def _planted_keys(seed: int, n: int) -> np.ndarray:
    """Random 64-bit keys with near copies (0-11 flipped bits) and one cluster of identical keys (many pairs from a
    few queries: the compiled search's per-block room overflows and is searched again)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64)
    near = base[: n // 2].copy()
    for i in range(len(near)):
        for bit in rng.choice(64, int(rng.integers(0, 12)), replace=False):
            near[i] ^= np.uint64(1 << int(bit))
    cluster = np.full(120, base[0], dtype=np.uint64)
    return np.concatenate([base, near, cluster])


def test_compiled_search_equals_numpy_search() -> None:
    pytest.importorskip("numba", reason="the numba extra is not installed")
    keys = _planted_keys(2, 3000)
    mirror = keys ^ hashing.MIRROR_MASK
    crop = np.random.default_rng(5).permutation(keys)  # a variant array unrelated to the keys' order
    for t in (3, 7, 9):
        numpy_rows = hashing.hamming_pairs(keys, t, [keys, mirror, crop], engine="numpy")
        compiled_rows = hashing.hamming_pairs(keys, t, [keys, mirror, crop], engine="compiled")
        assert len(numpy_rows) > 120 * 119 // 2  # the cluster alone, so the overflow path ran
        assert np.array_equal(numpy_rows, compiled_rows), t


def test_large_search_without_numba_says_which_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from curator.checks import near_duplicate

    monkeypatch.setattr(hashing, "COMPILED_FROM", 3)
    monkeypatch.setattr(near_duplicate, "SLOW_SEARCH_S", 0.0)
    monkeypatch.setattr(hashing, "compiled_available", lambda: False)
    paths = {}
    for i in range(3):
        paths[f"p{i}.png"] = save(photo(10 + i), tmp_path / f"p{i}.png")
    records = [record_for(p, [HASHES], rel=name) for name, p in paths.items()]
    notes = [f for f in _run(records) if f.code == "slow_duplicate_search"]
    assert len(notes) == 1 and "dreamcurate[numba]" in notes[0].message and notes[0].severity.name == "INFO"


def _reference_groups(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components with at least two members by a plain union-find, in order of their smallest member."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return [g for g in out.values() if len(g) > 1]


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_components_equal_union_find(seed: int) -> None:
    """Chains (the longest pointer paths), cliques and random sparse edges, in any order and either direction."""
    from curator.checks.near_duplicate import components, groups_of

    rng = np.random.default_rng(seed)
    n = 300
    edges = [(int(x), int(y)) for x, y in rng.integers(0, n, (rng.integers(0, 250), 2))]
    chain = rng.permutation(n)[:60]
    edges += [(int(chain[i]), int(chain[i + 1])) for i in range(len(chain) - 1)]
    clique = rng.permutation(n)[:12]
    edges += [(int(x), int(y)) for x in clique for y in clique if x < y]
    edges = [edges[i] for i in rng.permutation(len(edges))]
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    assert groups_of(components(n, a, b)) == _reference_groups(n, edges)
    assert groups_of(components(5, a[:0], b[:0])) == []
