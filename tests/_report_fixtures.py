"""Hand-built scan results over tiny generated images, for the report and export tests (no scanner needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from curator.dataset.discover import Concept, Dataset, Item
from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord, ScanResult, ScanSettings


def make_image(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    """A small sharp PNG, distinct per seed: random ellipses and boxes over a gradient (no blur, no 8x8 blocks)."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(60, 200, 3)
    base = (np.broadcast_to(ramp, (h, w, 3)) + rng.uniform(20, 50, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(base))
    draw = ImageDraw.Draw(image)
    for _ in range(7):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        x1, y1 = x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5))
        fill = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
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
    size: tuple[int, int] = (64, 48),
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
            make_image(path, seed, size)
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
            records.append(ItemRecord(item, metrics, own, size[0], size[1], decoded=True))
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


HOSTILE = '<script>alert("x")</script>'
#: a hostile file name (no slash: a file name cannot hold one)
HOSTILE_NAME = '<img src=x onerror="alert(1)"><script>alert(2)<\\script>'


def showcase_result(tmp: Path) -> ScanResult:
    """A small dataset with every kind of section content, and hostile file names and captions."""
    files = [f"img_{n:02d}.png" for n in range(10)] + [f"{HOSTILE_NAME}.png", "q\"uote's & <b>.png"]
    rels = [f"10_cat/{f}" for f in files]
    findings = {
        rels[1]: [
            Finding(
                "blurry",
                Severity.WARNING,
                "Image looks out of focus",
                {"metric": "sharpness", "threshold": 5.0, "value": 2.0},
            )
        ],
        rels[2]: [
            Finding(
                "screenshot",
                Severity.ERROR,
                "Looks like a screenshot",
                {"evidence": ["flat UI regions", HOSTILE]},
            )
        ],
        rels[3]: [dup(rels[4])],
        rels[5]: [dup(rels[4])],
        rels[10]: [
            Finding(
                "jpeg_artifacts",
                Severity.WARNING,
                f"Blocky {HOSTILE}",
                {"metric": "jpeg_quality", "threshold": 70, "tag": HOSTILE},
            )
        ],
        rels[11]: [
            Finding(
                "caption_too_long",
                Severity.WARNING,
                "Caption is cut at 75 tokens",
                {"cut_tags": [HOSTILE, '" onmouseover="x']},
            )
        ],
    }
    captions = {rels[10]: f"cat, {HOSTILE}, sitting", rels[11]: 'cat, " onload="alert(1), <img src=x>'}
    concepts = {"cat": (10, files), "dog": (4, ["d1.png", "d2.png", "d3.png"])}
    result = build_result(tmp / "data", concepts, findings, captions, size=(320, 240))
    result.findings.append(
        Finding("caption_extension_mismatch", Severity.WARNING, f"Captions are .txt {HOSTILE}", {"files": 3})
    )
    return result
