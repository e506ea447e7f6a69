"""A synthetic scrape at scale: bench_dev derivatives (resized 512-2048 px, cropped, re-encoded, mostly JPEG) in /tmp,
scanned cold and warm against a bare decode of the same files with the same workers; peak memory; then the HTML
report's size and time at several dataset sizes.

    python bench/scrape_scale.py [--n 20000] [--workers 2] [--out /tmp/scrape] [--report-sizes 1000,5000,20000]

The files are generated once into ``--out`` (never into the repository) and reused by later runs. The report sizes
reuse the scanned records (repeated under new names past ``--n``): the report's cost depends on how many images and
findings it lists, while its previews are bounded (``curator.report.html.THUMB_BUDGET``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchdata import DEFAULT_DATA, bare_decode  # noqa: E402

from curator.dataset.discover import Concept, Dataset, Item  # noqa: E402
from curator.report.html import write_html  # noqa: E402
from curator.review.curation import build_curation  # noqa: E402
from curator.scan.results import ScanResult, ScanSettings  # noqa: E402
from curator.scan.run import scan  # noqa: E402


def _source_rows(data: Path) -> list[dict[str, str]]:
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    skip = ("corrupt", "bomb", "too_small")
    return [r for r in rows if r["label"].split(":")[0] not in skip]


def sources(data: Path) -> list[Path]:
    """bench_dev's decodable, non-tiny images; derivative ``i`` is made from source ``i % len(sources)``."""
    return [data / r["path"] for r in _source_rows(data)]


def flag_rates(result: ScanResult, data: Path, code: str) -> tuple[int, int, int, int]:
    """(flagged, total) among derivatives of sources labelled ``code`` in bench_dev, and among the others: the
    detector on resized, cropped, re-encoded copies (the label is the source's, not a judgement of the copy)."""
    labels = [r["label"].split(":")[0] for r in _source_rows(data)]
    counts = [0, 0, 0, 0]
    for record in result.records:
        positive = labels[int(Path(record.item.rel).stem) % len(labels)] == code
        flagged = any(f.code == code for f in record.findings)
        counts[0 if positive else 2] += flagged
        counts[1 if positive else 3] += 1
    return counts[0], counts[1], counts[2], counts[3]


def _derive(job: tuple[Path, Path, int]) -> None:
    src, dst, seed = job
    rng = np.random.default_rng(seed)
    with Image.open(src) as opened:
        img = opened.convert("RGB")
    w, h = img.size
    crop = rng.uniform(0, 0.1, 4)
    img = img.crop((int(w * crop[0]), int(h * crop[1]), w - int(w * crop[2]), h - int(h * crop[3])))
    long_side = int(rng.integers(512, 2049))
    scale = long_side / max(img.size)
    img = img.resize(
        (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), Image.Resampling.BILINEAR
    )
    fmt = dst.suffix.lower()
    if fmt == ".jpg":
        img.save(dst, "JPEG", quality=int(rng.integers(70, 96)))
    elif fmt == ".webp":
        img.save(dst, "WEBP", quality=85)
    else:
        img.save(dst, "PNG", compress_level=1)


def generate(data: Path, out: Path, n: int, workers: int) -> list[Path]:
    """``n`` derivatives in ``out/images`` (80 % JPEG, 15 % PNG, 5 % WebP); existing files are kept."""
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    srcs = sources(data)
    rng = np.random.default_rng(0)
    kinds = rng.choice([".jpg", ".png", ".webp"], size=n, p=[0.8, 0.15, 0.05])
    jobs = [(srcs[i % len(srcs)], folder / f"{i:06d}{kinds[i]}", i) for i in range(n)]
    todo = [j for j in jobs if not j[1].exists()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_derive, todo, chunksize=16))
    return [j[1] for j in jobs]


def dataset_of(files: list[Path], root: Path) -> Dataset:
    """One plain concept over ``files``."""
    items = [Item(path=f, rel=f.name, concept="scrape", repeats=1) for f in files]
    return Dataset(root=root, concepts=[Concept("scrape", 1, root, items=items)], layout="plain")


def report_at(result: ScanResult, size: int, out: Path) -> tuple[float, int]:
    """Seconds and bytes of the HTML report of ``result`` grown (or cut) to ``size`` records."""
    records = []
    for i in range(size):
        base = result.records[i % len(result.records)]
        if i < len(result.records):
            records.append(base)
            continue
        item = dataclasses.replace(base.item, rel=f"copy{i}/{base.item.rel}")
        findings = [f.with_path(item.rel) for f in base.findings]
        records.append(dataclasses.replace(base, item=item, findings=findings))
    root = result.dataset.root
    concept = Concept("scrape", 1, root, items=[r.item for r in records])
    grown = dataclasses.replace(
        result, records=records, dataset=Dataset(root=root, concepts=[concept], layout="plain")
    )
    path = out / f"report_{size}.html"
    started = time.perf_counter()
    write_html(
        build_curation(grown), path
    )  # the report of what `scan --html` writes: the curation of the scan
    return time.perf_counter() - started, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """Generate, time, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/scrape"))
    parser.add_argument("--report-sizes", default="1000,5000,20000")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    files = generate(args.data.resolve(), args.out, args.n, args.workers)
    megapixels = sum(np.prod(Image.open(f).size) for f in files[:500]) / min(500, len(files)) / 1e6
    print(
        f"{len(files)} files in {args.out / 'images'} ({megapixels:.2f} MP on average), ready in "
        f"{time.perf_counter() - started:.0f} s"
    )
    for f in files:
        f.read_bytes()  # page cache warm for both
    decode_s = bare_decode(files, args.workers, chunksize=16)
    with tempfile.TemporaryDirectory() as tmp:
        settings = ScanSettings(workers=args.workers, workspace=Path(tmp) / "ws", progress=True)
        dataset = dataset_of(files, args.out / "images")
        t0 = time.perf_counter()
        result = scan(args.out / "images", settings, dataset=dataset)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scan(args.out / "images", settings, dataset=dataset)
        warm_s = time.perf_counter() - t0
    peak_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(files)
    print(f"{args.workers} workers; page cache warm")
    print(f"{'bare decode':<22}{decode_s:>9.1f} s {n / decode_s:>8.1f} images/s")
    print(
        f"{'cold scan':<22}{cold_s:>9.1f} s {n / cold_s:>8.1f} images/s  {cold_s / decode_s:.2f}x bare decode"
    )
    print(f"{'warm rescan':<22}{warm_s:>9.1f} s {n / warm_s:>8.1f} images/s")
    print(f"peak memory: main process {peak_main:.0f} MB, largest worker {peak_workers:.0f} MB")
    print(f"findings {sum(len(r.findings) for r in result.records)} on {n} images")
    for code in ("screenshot", "blurry"):
        hit, pos, false, neg = flag_rates(result, args.data.resolve(), code)
        print(
            f"{code}: {hit} of {pos} copies of {code} sources flagged ({hit / max(pos, 1):.3f}), "
            f"{false} of {neg} other copies ({false / max(neg, 1):.4f})"
        )
    for size in (int(s) for s in args.report_sizes.split(",") if s):
        seconds, size_bytes = report_at(result, size, args.out)
        print(f"HTML report at {size:>6} images: {seconds:6.1f} s, {size_bytes / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
