"""Shared helpers of the TUI tests: a tiny dataset on disk and a hand-built scan result over it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from curator.dataset.discover import discover
from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord, ScanResult, ScanSettings
from tui.app import ReviewApp, create_app
from tui.backend import Backend

#: (concept folder, file stem, colour, caption)
FILES = (
    ("10_cat", "a", (200, 40, 40), "cat, sitting, sofa, red"),
    ("10_cat", "b", (40, 200, 40), "cat, lying, grass"),
    ("10_cat", "c", (40, 40, 200), "cat, blurry photo"),
    ("10_cat", "d", (40, 40, 205), "cat, blurry photo, duplicate"),
    ("5_dog", "e", (220, 220, 40), "dog, running, beach"),
    ("5_dog", "f", (20, 20, 20), "dog, screenshot, ui"),
)


def make_dataset(root: Path) -> Path:
    """Six small images with captions in two concepts."""
    for folder, stem, colour, caption in FILES:
        (root / folder).mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (64, 48), colour)
        for x in range(0, 64, 8):  # a little structure so the half-block preview is not one flat colour
            image.putpixel((x, 10), (255, 255, 255))
        image.save(root / folder / f"{stem}.png")
        (root / folder / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    return root


def fake_result(root: Path, settings: ScanSettings) -> ScanResult:
    """A deterministic scan result over :func:`make_dataset`'s files (no real checks run)."""
    dataset = discover(root)
    records = []
    for index, item in enumerate(dataset.items):
        stem = Path(item.rel).stem
        findings: list[Finding] = []
        if stem in ("c", "d"):
            findings.append(
                Finding(
                    "blurry",
                    Severity.WARNING,
                    "Image looks out of focus",
                    {"laplacian_var": 12.0 + index, "threshold": 40.0},
                    item.rel,
                )
            )
        if stem == "d":
            findings.append(
                Finding(
                    "near_duplicate",
                    Severity.WARNING,
                    "Near-duplicate of c.png",
                    {"keeper": "10_cat/c.png", "phash": 2, "dhash": 3},
                    item.rel,
                )
            )
        if stem == "f":
            findings.append(
                Finding("screenshot", Severity.ERROR, "Looks like a screenshot", {"score": 0.9}, item.rel)
            )
        metrics = {"laplacian_var": 100.0 - 15 * index, "jpeg_quality": 90 - index}
        records.append(ItemRecord(item, metrics, findings, width=64, height=48, decoded=True))
    return ScanResult(dataset, settings, records)


class FakeScanBackend(Backend):
    """The real backend with a hand-built scan (until and unless a test wants the real one)."""

    def scan(self, progress, cancelled):  # type: ignore[no-untyped-def]
        progress(0, 6)
        result = fake_result(self.dataset_root, self.settings)
        progress(6, 6)
        return result


def make_app(root: Path, **kwargs: object) -> ReviewApp:
    """The review app over ``root`` with the fake scan and a workspace in ``root``."""
    settings = ScanSettings(workers=1)
    return create_app(root, settings, backend=FakeScanBackend(root, settings), **kwargs)  # type: ignore[arg-type]
