"""The dataset model: concepts and items discovered in a Kohya-layout folder. Nothing is opened here.

Kohya layout: ``ROOT/<repeats>_<name>/*.png`` with captions beside the images (``.txt`` or ``.caption``), and an
optional regularization folder with the same layout.

Example::

    ds = discover(Path("train"), reg_root=Path("reg"))
    for item in ds.items:
        print(item.rel, item.concept, item.repeats)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curator.findings import Finding

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CAPTION_EXTENSIONS = (".txt", ".caption")
WORKSPACE_DIRNAME = ".dreamcurate"


@dataclass(frozen=True)
class Item:
    """One training image.

    ``rel`` is the path relative to the dataset root (for regularization items: relative to the reg root, prefixed
    with ``reg/``), POSIX separators; it is the item's identity in caches, decisions and reports.
    ``caption_path`` is the caption file training would read (None when missing).
    """

    path: Path
    rel: str
    concept: str
    repeats: int
    caption_path: Path | None = None
    is_reg: bool = False


@dataclass
class Concept:
    """A ``<repeats>_<name>`` folder (or the plain folder taken as one concept)."""

    name: str
    repeats: int
    folder: Path
    is_reg: bool = False
    items: list[Item] = field(default_factory=list)


@dataclass
class Dataset:
    """What :func:`discover` found.

    ``layout`` is ``"kohya"`` (root of ``N_name`` folders), ``"concept_folder"`` (root is itself an ``N_name`` folder)
    or ``"plain"`` (a folder of images: one concept, repeats 1). ``findings`` are discovery problems (images Kohya
    would not read, folders without a repeat prefix, hidden files, symlink loops, caption extension mismatch...).
    ``caption_extension`` is the extension training will read (``.txt`` unless told otherwise).
    """

    root: Path
    concepts: list[Concept]
    layout: str = "kohya"
    reg_root: Path | None = None
    caption_extension: str = ".txt"
    findings: list[Finding] = field(default_factory=list)

    @property
    def items(self) -> list[Item]:
        """Every item, training concepts first, then regularization, in a stable order."""
        return [item for concept in self.concepts for item in concept.items]

    @property
    def train_items(self) -> list[Item]:
        """Items of training concepts (not regularization)."""
        return [item for item in self.items if not item.is_reg]

    @property
    def reg_items(self) -> list[Item]:
        """Items of regularization concepts."""
        return [item for item in self.items if item.is_reg]
