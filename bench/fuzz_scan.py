"""Fuzz the scan: mutate valid PNG, JPEG, WebP and GIF files (bit flips, truncation, header edits, wrong
extension, garbage tails) and scan them; no crash, no hang, every file accounted for.

    python bench/fuzz_scan.py --count 10000 --seed 1

The default test suite runs the same generator on 1,000 files (tests/test_foundation_fuzz.py).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_FORMATS = (
    ("PNG", ".png", {}),
    ("JPEG", ".jpg", {"quality": 85}),
    ("WEBP", ".webp", {}),
    ("GIF", ".gif", {}),
)
_EXTENSIONS = (".png", ".jpg", ".webp", ".gif", ".bmp", ".tif")


def _seeds(rng: np.random.Generator) -> list[tuple[bytes, str]]:
    """A handful of valid small files per format (32-64 px; RGB, RGBA, L, palette)."""
    out: list[tuple[bytes, str]] = []
    for fmt, ext, options in _FORMATS:
        for mode in ("RGB", "RGBA", "L", "P"):
            if fmt == "JPEG" and mode in ("RGBA", "P"):
                continue
            w, h = (int(v) for v in rng.integers(32, 65, 2))
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
            buf = io.BytesIO()
            img.save(buf, fmt, **options)
            out.append((buf.getvalue(), ext))
    return out


def mutate(data: bytes, ext: str, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """One mutation of ``data``: (bytes, extension, kind)."""
    buf = bytearray(data)
    kind = str(rng.choice(["bitflip", "truncate", "header", "wrong_ext", "tail", "chunk", "combo"]))
    if kind in ("bitflip", "combo"):
        for _ in range(int(rng.integers(1, 12))):
            pos = int(rng.integers(0, len(buf)))
            buf[pos] ^= 1 << int(rng.integers(0, 8))
    if kind in ("truncate", "combo"):
        buf = buf[: int(rng.integers(0, len(buf)))]
    if kind == "header" and buf:
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(0, min(len(buf), 40)))
            buf[pos] = int(rng.integers(0, 256))
    if kind == "wrong_ext":
        ext = str(rng.choice([e for e in _EXTENSIONS if e != ext]))
    if kind == "tail":
        buf += rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
    if kind == "chunk" and len(buf) > 20:
        start = int(rng.integers(0, len(buf) - 10))
        buf[start : start + 10] = rng.integers(0, 256, 10, dtype=np.uint8).tobytes()
    return bytes(buf), ext, kind


def make_fuzz_corpus(out: Path, count: int, seed: int = 0) -> Path:
    """Write ``count`` mutated files into ``out/1_fuzz`` and return ``out`` (a Kohya root)."""
    rng = np.random.default_rng(seed)
    seeds = _seeds(rng)
    folder = Path(out) / "1_fuzz"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        data, ext = seeds[int(rng.integers(0, len(seeds)))]
        mutated, ext, _ = mutate(data, ext, rng)
        (folder / f"f{index:05d}{ext}").write_bytes(mutated)
    return Path(out)


def main() -> None:
    """Generate the corpus in a temporary folder, scan it, print the outcome table."""
    from curator.scan.results import ScanSettings
    from curator.scan.run import scan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fuzz_corpus(Path(tmp), args.count, args.seed)
        settings = ScanSettings(
            workers=args.workers,
            progress=False,
            params={"loader": {"max_pixels": 4_000_000, "timeout_s": 10}},
        )
        started = time.perf_counter()
        result = scan(root, settings)
        seconds = time.perf_counter() - started
    outcome = Counter("decoded" if r.decoded else r.findings[0].code for r in result.records)
    print(f"{'outcome':<20}{'files':>8}")
    for key, value in sorted(outcome.items()):
        print(f"{key:<20}{value:>8}")
    print(
        f"{'total':<20}{len(result.records):>8}   {seconds:.1f} s, {len(result.records) / seconds:.0f} files/s"
    )
    assert len(result.records) == args.count


if __name__ == "__main__":
    main()
