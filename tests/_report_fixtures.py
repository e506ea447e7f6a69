"""Hand-built scan results over tiny generated images, for the report and export tests (no scanner needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from curator.dataset import Concept, Dataset, Item
from curator.findings import Finding, Severity
from curator.results import ItemRecord, ScanResult, ScanSettings


def make_image(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    """A small random-texture PNG (distinct per seed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def fake_hash(seed: int) -> str:
    """A deterministic 64-bit hex hash string."""
    return hashlib.sha256(str(seed).encode()).hexdigest()[:16]


def build_result(
    root: Path,
    concepts: dict[str, tuple[int, list[str]]],
    findings: dict[str, list[Finding]] | None = None,
    captions: dict[str, str] | None = None,
    reg: dict[str, tuple[int, list[str]]] | None = None,
) -> ScanResult:
    """Create ``root/<repeats>_<name>/<file>`` images (+ captions) and a ScanResult describing them.

    ``concepts``: name -> (repeats, file names). ``findings``: rel -> findings (path filled in).
    ``captions``: rel -> caption text (default "NAME, tag"). ``reg``: like concepts, under ``root.parent/reg``.
    """
    findings = findings or {}
    captions = captions or {}
    records: list[ItemRecord] = []
    concept_objs: list[Concept] = []
    seed = 0
    groups = [(root, name, spec, False) for name, spec in concepts.items()]
    reg_root = root.parent / "reg" if reg else None
    groups += [(reg_root, name, spec, True) for name, spec in (reg or {}).items()]
    for base, name, (repeats, files), is_reg in groups:
        assert base is not None
        folder = base / f"{repeats}_{name}"
        concept = Concept(name, repeats, folder, is_reg)
        for file in files:
            seed += 1
            path = folder / file
            make_image(path, seed)
            rel = ("reg/" if is_reg else "") + f"{repeats}_{name}/{file}"
            cap = path.with_suffix(".txt")
            cap.write_text(captions.get(rel, f"{name}, tag{seed % 3}"), encoding="utf-8")
            item = Item(path, rel, name, repeats, cap, is_reg)
            concept.items.append(item)
            own = [f.with_path(rel) for f in findings.get(rel, [])]
            metrics = {
                "phash": fake_hash(seed),
                "sharpness": float(seed * 3 % 17),
                "jpeg_quality": 60 + seed % 40,
            }
            records.append(ItemRecord(item, metrics, own, 64, 48, decoded=True))
        concept_objs.append(concept)
    dataset = Dataset(root, concept_objs, "kohya", reg_root, ".txt")
    return ScanResult(dataset, ScanSettings(progress=False), records, analysed=len(records))


def dup(keeper: str, severity: Severity = Severity.WARNING) -> Finding:
    """A near_duplicate finding pointing at ``keeper``."""
    return Finding(
        "near_duplicate", severity, f"Near-duplicate of {keeper}", {"keeper": keeper, "distance": 3}
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (to prove files were not touched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
