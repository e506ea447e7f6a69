"""Blur as cameras make it: motion and defocus variants of bench_dev's sharp photos, and a shallow-depth-of-field
negative set, scored with the product's own scan and judge.

    python bench/blur_variants.py [--data PATH_TO_bench_dev] [--out /tmp/blur_variants] [--workers 2]

From every ``ok`` photo of bench_dev whose long side is at least 1024 px (resized to 1024, the scale the issue's
field cases were at) it writes into ``--out`` (never into the repository):

- ``sharp``: the photo itself (negative);
- ``bokeh``: a sharp subject (a feathered ellipse, 20-40 % of the frame) on a disk-blurred background, radius 6-12
  (negative: a shallow depth of field is not blur);
- ``motion``: linear motion blur, any angle, length 7-31 px;
- ``defocus``: a disk (pillbox) blur of radius 2-8 px.

Everything is JPEG quality 92. Every image is judged in one dataset per blur kind (the negatives plus that kind's
variants), so the dataset median is that of a set mostly sharp, as a user's set is. Prints recall per kind and
strength, FPR on the negatives (sharp and bokeh apart), and cleanvision's ``blurry`` on the same files for reference.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchdata import DEFAULT_DATA  # noqa: E402

from curator.checks.base import CheckContext  # noqa: E402
from curator.checks.blur import BlurCheck  # noqa: E402
from curator.dataset.discover import Concept, Dataset, Item  # noqa: E402
from curator.scan.results import ScanSettings  # noqa: E402
from curator.scan.run import scan  # noqa: E402

SIDE = 1024
KINDS = ("sharp", "bokeh", "motion", "defocus")
NEGATIVES = ("sharp", "bokeh")


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels at ``angle_deg`` (anti-aliased by supersampling)."""
    size = int(math.ceil(length)) | 1
    size += 2
    sup = 8
    img = Image.new("F", (size * sup, size * sup), 0.0)
    draw = ImageDraw.Draw(img)
    c = size * sup / 2
    dx = math.cos(math.radians(angle_deg)) * (length - 1) * sup / 2
    dy = -math.sin(math.radians(angle_deg)) * (length - 1) * sup / 2
    draw.line([(c - dx, c - dy), (c + dx, c + dy)], fill=1.0, width=sup)
    k = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float64)
    return k / k.sum()


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised pillbox of ``radius`` pixels (edge anti-aliased by supersampling)."""
    size = int(math.ceil(radius)) * 2 + 3
    sup = 8
    yy, xx = np.mgrid[0 : size * sup, 0 : size * sup]
    c = size * sup / 2
    inside = ((xx + 0.5 - c) ** 2 + (yy + 0.5 - c) ** 2) <= (radius * sup) ** 2
    k = inside.reshape(size, sup, size, sup).mean(axis=(1, 3))
    return k / k.sum()


def convolve(img: Image.Image, kernel: np.ndarray) -> Image.Image:
    """``img`` convolved with ``kernel`` per channel (edges reflected, FFT)."""
    from scipy.signal import fftconvolve

    arr = np.asarray(img, dtype=np.float64)
    pad = kernel.shape[0] // 2 + 1
    padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([fftconvolve(padded[..., c], kernel, mode="same") for c in range(3)], axis=-1)
    out = out[pad:-pad, pad:-pad]
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def bokeh(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """A sharp feathered ellipse (the subject) over a disk-blurred copy (the background)."""
    w, h = img.size
    radius = float(rng.uniform(6, 12))
    background = convolve(img, disk_kernel(radius))
    area = float(rng.uniform(0.2, 0.4))
    aspect = float(rng.uniform(0.6, 1.4))
    ry = math.sqrt(area * w * h / math.pi / aspect)
    rx = ry * aspect
    cx, cy = float(rng.uniform(0.35, 0.65)) * w, float(rng.uniform(0.35, 0.65)) * h
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(3))
    return Image.composite(img, background, mask), f"background disk r={radius:.1f}, subject {area:.0%}"


def sharp_photos(data: Path) -> list[Path]:
    """bench_dev's clean photos with a long side of at least SIDE."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        data / r["path"]
        for r in rows
        if r["label"] == "ok" and r["subtype"] == "photo" and max(int(r["width"]), int(r["height"])) >= SIDE
    ]


def generate(data: Path, out: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Write the four sets into ``out``; returns one row per file (kind, strength, angle, path)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)
    for src in sharp_photos(data):
        with Image.open(src) as opened:
            img = opened.convert("RGB")
        img.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
        stem = src.stem
        length = float(rng.uniform(7, 31))
        angle = float(rng.uniform(0, 180))
        radius = float(rng.uniform(2, 8))
        variants = {
            "sharp": (img, "", None),
            "bokeh": (*bokeh(img, rng), None),
            "motion": (convolve(img, motion_kernel(length, angle)), f"{length:.1f}", angle),
            "defocus": (convolve(img, disk_kernel(radius)), f"{radius:.1f}", None),
        }
        for kind, (variant, strength, ang) in variants.items():
            path = out / kind / f"{stem}.jpg"
            variant.save(path, "JPEG", quality=92)
            rows.append(
                {"kind": kind, "strength": strength, "angle": ang, "path": path, "rel": f"{kind}/{stem}.jpg"}
            )
    return rows


def measure(rows: list[dict[str, Any]], out: Path, workers: int) -> dict[str, Any]:
    """The product's scan of every generated file; returns records by rel."""
    items = [Item(path=r["path"], rel=r["rel"], concept="bench", repeats=1) for r in rows]
    dataset = Dataset(root=out, concepts=[Concept("bench", 1, out, items=items)], layout="plain")
    settings = ScanSettings(workspace=out / "_ws", progress=False, workers=workers)
    result = scan(out, settings, dataset=dataset)
    return {r.item.rel: r for r in result.records}


def judge(rows: list[dict[str, Any]], records: dict[str, Any], params: dict[str, Any]) -> dict[str, set[str]]:
    """Flagged rels per positive kind, each judged in a dataset of the negatives plus that kind."""
    check = BlurCheck()
    flagged: dict[str, set[str]] = {}
    for kind in ("motion", "defocus"):
        members = [records[r["rel"]] for r in rows if r["kind"] in (*NEGATIVES, kind)]
        context = CheckContext(settings=ScanSettings(), records=members)
        flagged[kind] = {rec.item.rel for rec in members if check.judge(rec, params, context)}
    return flagged


def report(rows: list[dict[str, Any]], flagged: dict[str, set[str]]) -> dict[str, float]:
    """Print recall per kind and strength bin and FPR per negative set; returns the headline numbers."""
    numbers: dict[str, float] = {}
    for kind in ("defocus", "motion"):
        pos = [r for r in rows if r["kind"] == kind]
        hit = [r for r in pos if r["rel"] in flagged[kind]]
        numbers[f"{kind}_recall"] = len(hit) / max(1, len(pos))
        print(f"{kind:<8} recall {len(hit)}/{len(pos)} = {numbers[f'{kind}_recall']:.3f}")
        edges = (2, 4, 6, 8.01) if kind == "defocus" else (7, 13, 19, 25, 31.01)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sel = [r for r in pos if lo <= float(r["strength"]) < hi]
            got = sum(r["rel"] in flagged[kind] for r in sel)
            unit = "radius" if kind == "defocus" else "length"
            print(f"    {unit} {lo:>4g}-{hi:<5.4g} {got:>3}/{len(sel):<3}")
    for neg in NEGATIVES:
        rels = {r["rel"] for r in rows if r["kind"] == neg}
        fp = rels & (flagged["motion"] | flagged["defocus"])
        numbers[f"{neg}_fpr"] = len(fp) / max(1, len(rels))
        print(f"{neg:<8} FPR {len(fp)}/{len(rels)} = {numbers[f'{neg}_fpr']:.3f}  {sorted(fp)[:6]}")
    return numbers


def cleanvision_blurry(rows: list[dict[str, Any]]) -> dict[str, float]:
    """cleanvision's ``blurry`` issue on the same files (its default threshold), per kind."""
    try:
        from cleanvision import Imagelab
    except ImportError:
        print("cleanvision not installed (pip install -e '.[bench]'); peer row skipped")
        return {}
    lab = Imagelab(filepaths=[str(r["path"]) for r in rows], verbose=False)
    lab.find_issues({"blurry": {}}, verbose=False)
    hits = set(lab.issues.index[lab.issues["is_blurry_issue"]])
    out = {}
    for kind in KINDS:
        sel = [r for r in rows if r["kind"] == kind]
        out[kind] = sum(str(r["path"]) in hits for r in sel) / max(1, len(sel))
    print("cleanvision blurry flag rate: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    """Generate, scan, judge and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/blur_variants"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = generate(args.data.resolve(), args.out)
    print(
        f"{len(rows)} files ({len(rows) // len(KINDS)} photos x {len(KINDS)}) in {args.out}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    records = measure(rows, args.out, args.workers)
    report(rows, judge(rows, records, BlurCheck.defaults))
    if not args.no_peers:
        cleanvision_blurry(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
