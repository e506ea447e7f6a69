"""Scan throughput: our cold scan vs a bare decode of the same files (same workers) and vs cleanvision, in the same
run; our warm rescan vs cold; the start-up time of ``dreamcurate --help``. The loader alone (one decode, the gray and
its pyramid, the digests, no check) is timed too: the floor under any cold scan.

    python bench/scan_speed.py [--data PATH_TO_bench_dev] [--workers N]

Reads ``../shared/bench_dev`` beside the repository (override with ``--data`` or ``DREAMCURATE_BENCH_DEV``); the
dataset is read-only, so the scan cache goes to a temporary ``--workspace``. Targets: cold within 1.5x of a bare
decode (Pillow open + full decode of every file, nothing else, in a pool of the same size), cold >= 3x cleanvision's
images/s, warm >= 20x faster than cold, ``--help`` < 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchdata import DEFAULT_DATA, bare_decode, link_or_copy, loader_only  # noqa: E402

#: Labels left out of the comparison: cleanvision raises on a truncated file (its loader only guards the open),
#: and would decode the 144- and 400-megapixel bombs that we refuse from the header.
EXCLUDED_LABELS = ("corrupt", "bomb")


def manifest_files(data: Path) -> tuple[list[Path], int]:
    """The decodable image files listed in ``data/manifest.csv`` and how many rows were left out."""
    with open(data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [data / row["path"] for row in rows if row["label"] not in EXCLUDED_LABELS]
    return kept, len(rows) - len(kept)


def link_folder(files: list[Path], target: Path) -> Path:
    """A plain folder of hard links to ``files`` (copies across file systems), so both tools read the same bytes."""
    target.mkdir(parents=True)
    for path in files:
        link_or_copy(path, target / path.name)
    return target


def time_ours(folder: Path, files: list[Path], workers: int, workspace: Path) -> tuple[float, int, int]:
    """Seconds of one scan of ``folder`` (checked to cover exactly ``files``), with analysed / cached counts."""
    from curator.scan.results import ScanSettings
    from curator.scan.run import scan

    settings = ScanSettings(workers=workers, workspace=workspace, progress=False)
    started = time.perf_counter()
    result = scan(folder, settings)
    seconds = time.perf_counter() - started
    scanned = sorted(r.item.path.name for r in result.records)
    assert scanned == sorted(f.name for f in files), "the folder and the manifest disagree"
    return seconds, result.analysed, result.cached


def time_cleanvision(files: list[Path], workers: int) -> float:
    """Seconds of cleanvision's default ``find_issues`` on ``files``."""
    from cleanvision import Imagelab

    started = time.perf_counter()
    with (
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):  # its progress bars and warnings
        warnings.simplefilter("ignore")
        lab = Imagelab(filepaths=[str(f) for f in files])
        lab.find_issues(n_jobs=workers, verbose=False)
    return time.perf_counter() - started


def time_help(runs: int = 5) -> float:
    """Median wall time of ``python -m curator --help`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "curator", "--help"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    files, left_out = manifest_files(args.data)
    for path in files:  # page cache warm for both tools
        path.read_bytes()
    decode_s = bare_decode(files, args.workers)
    loader_s = loader_only(files, args.workers)
    clean_s = time_cleanvision(files, args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        folder = link_folder(files, Path(tmp) / "images")
        cold_s, analysed, _ = time_ours(folder, files, args.workers, Path(tmp) / "ws")
        warm_s, _, cached = time_ours(folder, files, args.workers, Path(tmp) / "ws")
    help_s = time_help()
    n = len(files)
    print(
        f"{n} images from {args.data} ({left_out} corrupt/bomb rows left out: cleanvision cannot take them)"
    )
    print(f"{args.workers} workers each, Python {sys.version.split()[0]}")
    print(f"{'run':<28}{'seconds':>9}{'images/s':>10}{'ratio':>22}")
    print(f"{'bare decode (Pillow)':<28}{decode_s:>9.2f}{n / decode_s:>10.1f}{'':>22}")
    print(
        f"{'dreamcurate loader alone':<28}{loader_s:>9.2f}{n / loader_s:>10.1f}"
        f"{loader_s / decode_s:>10.2f}x bare decode"
    )
    print(f"{'cleanvision find_issues':<28}{clean_s:>9.2f}{n / clean_s:>10.1f}{'1.00x':>22}")
    print(
        f"{'dreamcurate cold scan':<28}{cold_s:>9.2f}{n / cold_s:>10.1f}{clean_s / cold_s:>10.2f}x cleanvision"
    )
    print(
        f"{'dreamcurate warm rescan':<28}{warm_s:>9.3f}{n / warm_s:>10.0f}{cold_s / warm_s:>10.1f}x faster than cold"
    )
    print(f"{'dreamcurate --help':<28}{help_s:>9.3f}")
    print(f"cold analysed {analysed}, warm cached {cached}; cold / bare decode = {cold_s / decode_s:.2f}x")
    print(
        f"targets: cold <= 1.5x bare decode: {'met' if cold_s <= 1.5 * decode_s else 'MISSED'}; "
        f"cold >= 3x cleanvision: {'met' if clean_s / cold_s >= 3 else 'MISSED'}; "
        f"warm >= 20x: {'met' if cold_s / warm_s >= 20 else 'MISSED'}; "
        f"--help < 0.5 s: {'met' if help_s < 0.5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
