"""``near_duplicate``: the same picture resized, re-encoded, cropped a little, re-toned or mirrored.

Two phases, as in the data-quality libraries: :class:`DupHashes` (an image check) encodes every image into 64-bit
pHash and dHash, of the image and of its horizontal mirror (cached hex strings); :class:`NearDuplicates` (a dataset
check) searches all pairs whose pHash is within ``max_phash`` in either orientation (vectorised multi-index search,
:func:`curator.checks.hashing.hamming_pairs`), confirms them with the dHash of the same orientation, groups them into
connected components (:func:`components`) and names a keeper per cluster (:func:`curator.checks.keeper.choose_keeper`).
Every other member gets a warning with the keeper's path, both distances and whether it is mirrored. Byte- or
pixel-identical copies are left to ``exact_duplicate``. With CLIP features configured, pairs whose embeddings' cosine
similarity reaches ``clip_cosine`` are added too (semantic near-duplicates).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from curator.checks import hashing
from curator.checks.base import CheckContext, DatasetCheck, ImageCheck, Metrics
from curator.checks.clip_features import clip_features
from curator.checks.exact_duplicate import confirmed_pixel_digests
from curator.checks.keeper import choose_keeper, describe, keeper_reason, traits
from curator.findings import Finding, Severity


class DupHashes(ImageCheck):
    """Encodes one image for the duplicate search: pHash and dHash (hex) of each of :data:`VARIANTS`, and
    ``mean_luma`` (0-255), which the keeper rule compares across a cluster to spot a re-toned copy.

    Example::

        DupHashes().measure(view, {})["phash"]   # '3c0f81e0...'
    """

    name = "dup_hashes"
    codes = ()
    version = 4
    defaults: ClassVar[dict[str, Any]] = {}

    def measure(self, view: Any, params: dict[str, Any]) -> Metrics:
        """The hashes of ``view.gray``'s variants and its mean luma (the keeper's brightness evidence)."""
        # transparent images are hashed as flattened on white (the view's compositing), as editors and JPEG
        # exports flatten them
        gray = np.asarray(view.gray, dtype=np.float32)
        return {**variant_hashes(gray), "mean_luma": round(float(gray.mean()), 2)}


#: The variants each image is hashed as: itself, its mirror, its 90 % centre crop, and that crop mirrored.
#: Matching a crop's hash against the other images' plain hashes finds pairs where one is a crop of the other.
VARIANTS = ("", "_mirror", "_crop", "_crop_mirror")
CROP_KEEP = 0.9


def variant_hashes(gray: np.ndarray) -> dict[str, str]:
    """pHash and dHash (hex) of each of :data:`VARIANTS` of a gray image.

    Two reductions (the image and its crop); each mirror hashes its original's reduction flipped: the mirror image
    of the reduction, where reducing the mirrored image may differ by Pillow's rounding of a window edge (a few bits
    at most on noise, none on the bench; tests bound it against the plain per-variant hashes).
    """
    h, w = gray.shape
    dy, dx = round(h * (1 - CROP_KEEP) / 2), round(w * (1 - CROP_KEEP) / 2)
    crop = (dx, dy, w - dx, h - dy) if min(h - 2 * dy, w - 2 * dx) >= 9 else None
    image = hashing.as_float_image(gray)  # made once, reduced twice
    out = {}
    for suffix, box in (("", None), ("_crop", crop)):
        small_p, small_d = hashing.reductions(image, box)
        for mirror, sp, sd in (("", small_p, small_d), ("_mirror", small_p[:, ::-1], small_d[:, ::-1])):
            out[f"phash{suffix}{mirror}"] = hashing.to_hex(hashing.phash_of_small(sp))
            out[f"dhash{suffix}{mirror}"] = hashing.to_hex(hashing.dhash_of_small(sd))
    return {key: out[key] for kind in ("phash", "dhash") for key in (f"{kind}{v}" for v in VARIANTS)}


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per item 0..n-1 the smallest item of its connected component under the edges ``(a[e], b[e])``.

    Hook and compress, vectorised: each edge hooks the larger of its two roots under the smaller, then every pointer
    jumps to its root; repeated until every edge joins one root. Labels only ever point down to smaller items, so
    the root of a component is its smallest item.
    """
    label = np.arange(n)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    while a.size:
        la, lb = label[a], label[b]
        apart = la != lb
        if not apart.any():
            break
        la, lb = la[apart], lb[apart]
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
    return label


def groups_of(label: np.ndarray) -> list[list[int]]:
    """The components of :func:`components`'s labels with at least two members, each sorted, in order of their
    smallest member."""
    order = np.argsort(label, kind="stable")
    ordered = label[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], ordered.size)
    return [order[x:y].tolist() for x, y in zip(starts.tolist(), ends.tolist(), strict=True) if y - x > 1]


@dataclass(frozen=True)
class Pairs:
    """Near-duplicate pairs as arrays (``a < b``, indices into the searched metrics): the distances of the closest
    variant that passed and its index in :data:`VARIANTS`."""

    a: np.ndarray
    b: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray
    variant: np.ndarray

    def link(self, row: int) -> dict[str, Any]:
        """Pair ``row`` as the finding's evidence reads it."""
        return {
            "a": int(self.a[row]),
            "b": int(self.b[row]),
            "phash": int(self.phash[row]),
            "dhash": int(self.dhash[row]),
            "variant": VARIANTS[int(self.variant[row])][1:],
        }


def pair_arrays(metrics: list[dict[str, Any]], params: dict[str, Any], engine: str = "auto") -> Pairs:
    """Near-duplicate pairs among hashed items (see :func:`find_pairs`), as arrays."""
    keys_p = hashing.from_hex([m["phash"] for m in metrics])
    keys_d = hashing.from_hex([m["dhash"] for m in metrics])
    q_p = [hashing.from_hex([m[f"phash{v}"] for m in metrics]) for v in VARIANTS]
    q_d = [hashing.from_hex([m[f"dhash{v}"] for m in metrics]) for v in VARIANTS]
    hits = hashing.hamming_pairs(keys_p, int(params["max_phash"]), q_p, engine=engine)
    if hits.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Pairs(empty, empty, empty, empty, empty)
    i, j, pdist, k = hits.T
    ddist = np.zeros_like(pdist)
    for v in range(len(VARIANTS)):
        sel = k == v
        ddist[sel] = hashing.popcount(q_d[v][i[sel]] ^ keys_d[j[sel]])
    ok = ddist <= int(params["max_dhash"])
    a, b = np.minimum(i[ok], j[ok]), np.maximum(i[ok], j[ok])
    score, pd, dd, v = pdist[ok] + ddist[ok], pdist[ok], ddist[ok], k[ok]
    # per pair the closest variant, the first found on ties: order by pair, score, then the search's own order
    order = np.lexsort((np.arange(a.size), score, b, a))
    first = np.ones(order.size, dtype=bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    chosen = order[first]
    return Pairs(a[chosen], b[chosen], pd[chosen], dd[chosen], v[chosen])


def find_pairs(
    metrics: list[dict[str, Any]], params: dict[str, Any], engine: str = "auto"
) -> list[dict[str, Any]]:
    """Near-duplicate pairs among hashed items: ``[{"a", "b", "phash", "dhash", "variant"}]`` (indices into metrics).

    A pair needs some variant of one item (itself, mirrored, cropped, both) within ``max_phash`` of the other's
    pHash and within ``max_dhash`` of its dHash; the closest variant that passes both is reported. ``engine`` is
    :func:`~curator.checks.hashing.hamming_pairs`'s.
    """
    pairs = pair_arrays(metrics, params, engine)
    return [pairs.link(row) for row in range(pairs.a.size)]


def clip_pairs(embeddings: list[np.ndarray | None], min_cosine: float) -> list[dict[str, Any]]:
    """Pairs of items whose CLIP embeddings reach ``min_cosine`` (blockwise matrix products; None = no embedding)."""
    have = [i for i, e in enumerate(embeddings) if e is not None]
    if len(have) < 2:
        return []
    emb = np.stack([np.asarray(embeddings[i], dtype=np.float32) for i in have])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8
    out = []
    for start in range(0, len(have), 1024):
        sims = emb[start : start + 1024] @ emb.T
        rows, cols = np.nonzero(sims >= min_cosine)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + r < c:
                out.append({"a": have[start + r], "b": have[c], "cosine": round(float(sims[r, c]), 4)})
    return out


def _ids(values: list[str | None]) -> np.ndarray:
    """A small integer per distinct non-empty value (-1 for none), so equal values compare as equal integers."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) if v else -1 for v in values], dtype=np.int64)


def _keeper_links(
    pairs: Pairs, semantic: dict[tuple[int, int], dict[str, Any]], keeper_of: np.ndarray
) -> dict[tuple[int, int], dict[str, Any]]:
    """The evidence of every pair between a member and its cluster's keeper (hash distances, CLIP cosine or both),
    keyed ``(low, high)``: the only pairs a finding names."""
    to_keeper = (keeper_of[pairs.a] == pairs.b) | (keeper_of[pairs.b] == pairs.a)
    links = {(int(pairs.a[r]), int(pairs.b[r])): pairs.link(r) for r in np.flatnonzero(to_keeper).tolist()}
    for (x, y), p in semantic.items():
        if keeper_of[x] == y or keeper_of[y] == x:
            links.setdefault((x, y), {}).update(p)
    return links


class _Copies:
    """The exact copies of each member of one group (same file bytes or same confirmed pixels, the exact-copy test
    of ``NearDuplicates._near_duplicates``), found through two indexes instead of comparing every pair."""

    def __init__(self, group: list[int], hashed: list[Any], digests: dict[str, str]) -> None:
        self.by_sha: dict[str, list[int]] = {}
        self.by_pixels: dict[str, list[int]] = {}
        for j in group:
            if sha := hashed[j].metrics.get("sha256"):
                self.by_sha.setdefault(sha, []).append(j)
            if pix := digests.get(hashed[j].item.rel):
                self.by_pixels.setdefault(pix, []).append(j)
        self.hashed, self.digests, self.order = hashed, digests, {j: n for n, j in enumerate(group)}

    def of(self, i: int) -> list[int]:
        """Member i and its exact copies, in the group's order."""
        sha = self.hashed[i].metrics.get("sha256")
        pix = self.digests.get(self.hashed[i].item.rel)
        found = {i, *(self.by_sha.get(sha, []) if sha else []), *(self.by_pixels.get(pix, []) if pix else [])}
        return sorted(found, key=self.order.__getitem__)


def _speaks_for_copies(i: int, copies: _Copies) -> bool:
    """True when item i is the one of its exact copies in its group that exact_duplicate keeps (or has none)."""
    members = copies.of(i)
    return len(members) == 1 or choose_keeper([copies.hashed[j] for j in members]) is copies.hashed[i]


#: A search over at least ``hashing.COMPILED_FROM`` images that took this long without numba says which extra helps.
SLOW_SEARCH_S = 5.0


class NearDuplicates(DatasetCheck):
    """Clusters near-duplicate images and flags every member but the keeper.

    Example::

        findings = NearDuplicates().run(records, NearDuplicates.defaults, context)
        # [Finding("near_duplicate", WARNING, "Near-duplicate of 1_cat/a.png (...)", {"keeper": "1_cat/a.png", ...})]
    """

    name = "near_duplicate"
    codes = ("near_duplicate", "clip_unavailable", "slow_duplicate_search")
    version = 2  # 2: evidence says what marks each copy ("copy") and why the keeper won ("keeper_why")
    defaults: ClassVar[dict[str, Any]] = {
        "max_phash": 7,  # pHash Hamming distance (63 bits used) of the matched variant; <= 7 keeps the search fast
        "max_dhash": 16,  # dHash Hamming distance in the same orientation
        "clip_cosine": 0.95,  # semantic pairs, when CLIP embeddings are present
    }

    def run(self, records: list[Any], params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """One ``near_duplicate`` warning per non-keeper member of each cluster."""
        hashed = [r for r in records if r.decoded and all(f"phash{v}" in r.metrics for v in VARIANTS)]
        if len(hashed) < 2:
            return []
        started = time.perf_counter()
        findings = self._near_duplicates(hashed, params, context)
        seconds = time.perf_counter() - started
        if (
            seconds >= SLOW_SEARCH_S
            and len(hashed) >= hashing.COMPILED_FROM
            and not hashing.compiled_available()
        ):
            message = (
                f"The near-duplicate search over {len(hashed):,} images ran without numba ({seconds:.0f} s); "
                "pip install 'dreamcurate[numba]' runs it compiled, many times faster"
            )
            findings.append(
                Finding(
                    "slow_duplicate_search",
                    Severity.INFO,
                    message,
                    {"images": len(hashed), "seconds": seconds},
                )
            )
        if context.cache.get("clip_error"):
            message = f"CLIP features were configured but could not run: {context.cache['clip_error']}"
            findings.append(
                Finding("clip_unavailable", Severity.WARNING, message, {"error": context.cache["clip_error"]})
            )
        return findings

    def _near_duplicates(
        self, hashed: list[Any], params: dict[str, Any], context: CheckContext
    ) -> list[Finding]:
        pairs = pair_arrays([r.metrics for r in hashed], params)
        feats = clip_features(context, hashed)
        embeddings = [feats.get(r.item.rel, {}).get("embedding") for r in hashed]
        semantic = {(p["a"], p["b"]): p for p in clip_pairs(embeddings, float(params["clip_cosine"]))}
        digests = confirmed_pixel_digests(hashed, context)
        a = np.concatenate([pairs.a, np.array([x for x, _ in semantic], dtype=np.int64)])
        b = np.concatenate([pairs.b, np.array([y for _, y in semantic], dtype=np.int64)])
        # exact copies (same bytes, or same confirmed pixels) are exact_duplicate's: they link nothing here
        sha = _ids([r.metrics.get("sha256") for r in hashed])
        pix = _ids([digests.get(r.item.rel) for r in hashed])
        exact = ((sha[a] >= 0) & (sha[a] == sha[b])) | ((pix[a] >= 0) & (pix[a] == pix[b]))
        groups = groups_of(components(len(hashed), a[~exact], b[~exact]))
        marks_of, keeper_of = [], np.full(len(hashed), -1, dtype=np.int64)
        for group in groups:
            members = [hashed[i] for i in group]
            marks = traits(members)
            keeper_of[group] = group[members.index(choose_keeper(members, marks))]
            marks_of.append(marks)
        links = _keeper_links(pairs, semantic, keeper_of)
        findings = []
        for group, marks in zip(groups, marks_of, strict=True):
            members = [hashed[i] for i in group]
            k = int(keeper_of[group[0]])
            keeper, why = hashed[k], keeper_reason(members, found=marks)
            copies = _Copies(group, hashed, digests)
            for i in group:
                if i == k or not _speaks_for_copies(i, copies):
                    continue  # exact copies of another member are exact_duplicate's to report
                link = links.get((min(i, k), max(i, k)))
                finding = self._finding(hashed[i], keeper, link, len(group), params)
                finding.evidence["copy"] = describe(marks[hashed[i].item.rel])
                finding.evidence["keeper_why"] = why
                findings.append(finding)
        return findings

    def _finding(
        self, record: Any, keeper: Any, link: dict[str, Any] | None, size: int, params: dict[str, Any]
    ) -> Finding:
        evidence: dict[str, Any] = {"keeper": keeper.item.rel, "cluster_size": size}
        if link:
            evidence.update({k: link[k] for k in ("phash", "dhash", "cosine") if k in link})
            if "variant" in link:
                evidence["mirrored"] = "mirror" in link["variant"]
                evidence["cropped"] = "crop" in link["variant"]
        else:
            evidence["linked_via"] = "another member of the cluster"
        evidence["thresholds"] = {k: params[k] for k in ("max_phash", "max_dhash", "clip_cosine")}
        how = " (mirrored)" if evidence.get("mirrored") else ""
        how += " (cropped)" if evidence.get("cropped") else ""
        dist = f"pHash {link['phash']}, dHash {link['dhash']}" if link and "phash" in link else "same cluster"
        if link and "cosine" in link and "phash" not in link:
            dist = f"CLIP cosine {link['cosine']:.3f}"
        message = f"Near-duplicate of {keeper.item.rel}{how} ({dist}); the keeper is the one to train on"
        return Finding("near_duplicate", Severity.WARNING, message, evidence, record.item.rel)


CHECKS = [DupHashes(), NearDuplicates()]
