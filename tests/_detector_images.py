"""Generated images and helpers for the detector tests (no files from outside the test's tmp_path)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curator.checks.base import CheckContext, ImageCheck
from curator.dataset.discover import Item
from curator.findings import Finding
from curator.images.loader import load_view
from curator.images.view import ImageView
from curator.scan.results import ItemRecord, ScanSettings


def photo(seed: int = 0, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo stand-in: multi-scale smooth noise, a few solid shapes with crisp edges, fine sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    field = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((8, 90.0), (32, 40.0), (96, 20.0)):
        small = rng.random((max(2, h * scale // 480), max(2, w * scale // 480), 3)).astype(np.float32)
        layer = np.stack(
            [
                np.asarray(Image.fromarray(small[..., c], "F").resize((w, h), Image.Resampling.BICUBIC))
                for c in range(3)
            ],
            axis=-1,
        )
        field += amp * layer
    img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        x1, y1 = x0 + int(rng.integers(30, 160)), y0 + int(rng.integers(30, 120))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([(x0, y0), (x1, y1)], fill=color)
        else:
            draw.rectangle([(x0, y0), (x1, y1)], fill=color)
    arr = np.asarray(img, np.float32) + rng.normal(0, 3.0, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def window_screenshot(size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A rendered desktop window: title bar, menu, toolbar, text lines, a side panel and a status bar."""
    w, h = size
    img = Image.new("RGB", size, (58, 110, 165))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.rectangle([40, 30, w - 40, h - 50], fill=(246, 246, 246), outline=(90, 90, 90))
    d.rectangle([40, 30, w - 40, 56], fill=(48, 48, 56))
    d.text((52, 36), "Untitled Document - Text Editor", fill=(235, 235, 235), font=font)
    d.rectangle([41, 57, w - 41, 76], fill=(230, 230, 230))
    for i, word in enumerate(("File", "Edit", "View", "Search", "Tools", "Help")):
        d.text((52 + 60 * i, 60), word, fill=(20, 20, 20), font=font)
    d.line([41, 77, w - 41, 77], fill=(180, 180, 180))
    d.rectangle([41, 78, 200, h - 72], fill=(236, 238, 242))
    d.line([200, 78, 200, h - 72], fill=(170, 170, 170))
    for i in range(18):
        d.text((50, 90 + 22 * i), f"folder_{i:02d}/notes.txt", fill=(30, 30, 30), font=font)
    lines = "The quick brown fox jumps over the lazy dog while the editor shows line numbers and text."
    for i in range(20):
        d.text((212, 90 + 20 * i), f"{i + 1:3d}  {lines[: 40 + (i * 7) % 50]}", fill=(10, 10, 10), font=font)
    d.rectangle([41, h - 71, w - 41, h - 51], fill=(220, 220, 220))
    d.text((52, h - 68), "Ln 12, Col 4    UTF-8    Spaces: 4", fill=(40, 40, 40), font=font)
    d.rectangle([0, h - 28, w, h], fill=(30, 30, 34))
    d.text((10, h - 22), "Activities   Terminal   Files   12:04", fill=(220, 220, 220), font=font)
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **options: Any) -> Path:
    """Write ``img`` to ``path`` (format from the suffix unless given) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **options)
    return path


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """``img`` encoded as JPEG at ``quality`` and decoded again."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def view_of(path: Path) -> ImageView:
    """The loader's view of a file."""
    return load_view(path)


def record_for(path: Path, checks: list[ImageCheck], rel: str | None = None) -> ItemRecord:
    """An ItemRecord measured by ``checks`` (the way scan does it, without the cache)."""
    view = view_of(path)
    metrics: dict[str, Any] = {
        "sha256": view.sha256,
        "pixel_fingerprint": view.pixel_fingerprint,
        "file_size": view.file_size,
    }
    for check in checks:
        metrics.update(check.measure(view, check.defaults))
    item = Item(path=path, rel=rel or path.name, concept="c", repeats=1)
    return ItemRecord(item=item, metrics=metrics, width=view.width, height=view.height, decoded=True)


def judge_all(
    check: ImageCheck, records: list[ItemRecord], params: dict[str, Any] | None = None
) -> list[Finding]:
    """Every finding ``check`` emits over ``records``, with the dataset context scan would give it."""
    context = CheckContext(settings=ScanSettings(), records=records)
    found = []
    for r in records:
        found += check.judge(r, params or check.defaults, context)
    return found
