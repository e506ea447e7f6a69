"""The near-duplicate pair search at scale: ``find_pairs`` (hex parsing, every hash variant, default thresholds) over
random items with planted near copies, numpy against compiled (the ``numba`` extra), in the same run.

    python bench/dup_search.py [--sizes 100000,250000,1000000] [--numpy-up-to 250000]

Each item has the four variants the scan hashes (plain, mirror, crop, crop mirrored), so 250,000 items are 1,000,000
hashes and 1,000,000 items are 4,000,000. One item in 50 gets a near copy (0-7 pHash bits flipped), so the search
finds pairs as well as rejects candidates. The numpy search grows with the square of the items past a few hundred
thousand; it runs up to ``--numpy-up-to``. The first compiled call on a machine compiles (cached afterwards): it is
timed apart. Target: 1,000,000 hashes in under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curator.checks import hashing  # noqa: E402
from curator.checks.near_duplicate import VARIANTS, NearDuplicates, find_pairs  # noqa: E402

TARGET_S = 10.0
TARGET_HASHES = 1_000_000


def items(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` items' hash metrics (hex, as the scan caches them); every 50th a near copy of the one before."""
    rng = np.random.default_rng(seed)
    cols = {
        f"{k}{v}": rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64)
        for v in VARIANTS
        for k in ("phash", "dhash")
    }
    for i in range(1, n, 50):
        for k in ("phash", "dhash"):
            flips = rng.choice(63, int(rng.integers(0, 8)), replace=False)
            cols[f"{k}"][i] = cols[k][i - 1] ^ np.uint64(sum(1 << int(b) for b in flips))
    hexed = {key: [f"{x:016x}" for x in col.tolist()] for key, col in cols.items()}
    return [{key: col[i] for key, col in hexed.items()} for i in range(n)]


def timed(metrics: list[dict[str, str]], engine: str) -> tuple[float, int]:
    started = time.perf_counter()
    pairs = find_pairs(metrics, NearDuplicates.defaults, engine=engine)
    return time.perf_counter() - started, len(pairs)


def main() -> None:
    """Time each size with each engine and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,250000,1000000")
    parser.add_argument("--numpy-up-to", type=int, default=250_000)
    args = parser.parse_args()
    compiled = hashing.compiled_available()
    if compiled:
        started = time.perf_counter()
        timed(items(2000), "compiled")
        print(f"first compiled call (compiling, or loading the cache): {time.perf_counter() - started:.2f} s")
    else:
        print("numba is not installed (pip install 'dreamcurate[numba]'): numpy only")
    print(f"{'items':>10}{'hashes':>11}{'engine':>10}{'seconds':>9}{'pairs':>8}{'ratio':>9}")
    verdict = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        metrics = items(n)
        numpy_s = None
        if n <= args.numpy_up_to:
            numpy_s, pairs = timed(metrics, "numpy")
            print(f"{n:>10,}{4 * n:>11,}{'numpy':>10}{numpy_s:>9.2f}{pairs:>8}{'1.00x':>9}")
        if compiled:
            seconds, pairs = timed(metrics, "compiled")
            ratio = f"{numpy_s / seconds:.1f}x" if numpy_s else ""
            print(f"{n:>10,}{4 * n:>11,}{'compiled':>10}{seconds:>9.2f}{pairs:>8}{ratio:>9}")
            if 4 * n >= TARGET_HASHES:
                verdict.append(f"{4 * n:,} hashes in {seconds:.2f} s")
    if verdict:
        print(f"target: {TARGET_HASHES:,} hashes under {TARGET_S:g} s -> " + "; ".join(verdict))


if __name__ == "__main__":
    main()
