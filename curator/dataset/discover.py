"""The dataset model: concepts and items discovered in a Kohya-layout folder. Nothing is opened here.

Kohya layout: ``ROOT/<repeats>_<name>/*.png`` with captions beside the images (``.txt`` or ``.caption``), and an
optional regularization folder with the same layout.

Example::

    ds = discover(Path("train"), reg_root=Path("reg"))
    for item in ds.items:
        print(item.rel, item.concept, item.repeats)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from curator.findings import Finding, Severity

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CAPTION_EXTENSIONS = (".txt", ".caption")
#: What Kohya sd-scripts' file listing matches (case-sensitive glob on Linux; AVIF / JPEG-XL only with plugins).
KOHYA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
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


# --- discovery ------------------------------------------------------------------------------------------------

#: Kohya's folder name: ``<repeats>_<name>`` (sd-scripts splits on the first underscore and parses the number).
_CONCEPT_RE = re.compile(r"^(\d+)_(.+)$")


def parse_concept_folder(name: str) -> tuple[int, str] | None:
    """``"10_mystyle"`` -> ``(10, "mystyle")``; None when the name has no repeat prefix."""
    match = _CONCEPT_RE.match(name)
    if not match:
        return None
    return int(match.group(1)), match.group(2)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension we read (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def check_reg_root(root: Path, reg_root: Path | None) -> None:
    """ValueError when the regularization folder is the training folder or holds it (every image would count
    twice). Cheap: commands call it before any work."""
    root = Path(root)
    if reg_root is not None and Path(reg_root).resolve() in (root.resolve(), *root.resolve().parents):
        raise ValueError(
            f"The regularization folder {reg_root} is (or holds) the training folder {root}: give a separate folder"
        )


def discover(root: Path, reg_root: Path | None = None, caption_extension: str | None = None) -> Dataset:
    """Find concepts, images and captions under ``root`` (and ``reg_root``). Opens no image.

    Layouts: a root of ``<repeats>_<name>`` folders (``"kohya"``), a root that is itself such a folder
    (``"concept_folder"``), or a plain folder of images (``"plain"``: one concept named after the folder, 1 repeat).
    Problems become ``Dataset.findings``; nothing raises except a root that is not a folder (``NotADirectoryError``)
    and a ``reg_root`` that is the root or holds it (``ValueError``).

    Example::

        ds = discover(Path("train"), caption_extension=".caption")
        print(ds.layout, [(c.name, c.repeats, len(c.items)) for c in ds.concepts])
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"Not a folder: {root}")
    check_reg_root(root, reg_root)
    walker = _Walker()
    if reg_root is not None:  # a regularization folder inside the training root is not a training folder
        walker.skip.add(Path(reg_root).resolve())
    layout, concepts = _concepts_of(root, "", False, walker)
    if reg_root is not None:
        if not Path(reg_root).is_dir():
            raise NotADirectoryError(f"Not a folder: {reg_root}")
        _, reg_concepts = _concepts_of(Path(reg_root), "reg/", True, walker)
        concepts += reg_concepts
    findings = walker.findings
    if layout == "plain" and concepts and concepts[0].items:
        findings.append(_plain_layout_finding(concepts[0]))
    roots = [root, *([Path(reg_root)] if reg_root is not None else [])]
    linked_out = _drop_linked_out_images(concepts, roots)
    extension, ext_findings = _assign_captions(concepts, caption_extension, roots)
    ext_findings = linked_out + ext_findings
    findings += ext_findings
    if not any(c.items for c in concepts if not c.is_reg):
        findings.append(
            Finding(
                "no_images",
                Severity.ERROR,
                "No training images found (Kohya reads ROOT/<repeats>_<name>/*.png|jpg|webp...)",
                {"root": str(root)},
            )
        )
    return Dataset(
        root=root,
        concepts=concepts,
        layout=layout,
        reg_root=Path(reg_root) if reg_root is not None else None,
        caption_extension=extension,
        findings=findings,
    )


class _Walker:
    """Directory listing that reports hidden files and never follows a symlink loop."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.skip: set[Path] = set()
        self._seen: set[tuple[int, int]] = set()

    def enter(self, folder: Path, rel: str) -> bool:
        """Whether ``folder`` may be listed (False for a symlink loop or an unreadable folder)."""
        try:
            st = folder.stat()
        except OSError:
            self.findings.append(
                Finding(
                    "symlink_loop",
                    Severity.WARNING,
                    "Folder link cannot be followed (loop or broken)",
                    {},
                    rel,
                )
            )
            return False
        key = (st.st_dev, st.st_ino)
        if key in self._seen:
            self.findings.append(
                Finding(
                    "symlink_loop",
                    Severity.WARNING,
                    "Symlinked folder points back into the dataset; not followed",
                    {"target": str(folder.resolve())},
                    rel,
                )
            )
            return False
        self._seen.add(key)
        return True

    def list(self, folder: Path, rel_prefix: str) -> tuple[list[Path], list[Path]]:
        """(files, folders) in ``folder``, sorted, hidden entries reported and left out."""
        files: list[Path] = []
        dirs: list[Path] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            self.findings.append(
                Finding(
                    "unreadable", Severity.ERROR, f"Cannot list folder: {exc.strerror}", {}, rel_prefix or "."
                )
            )
            return files, dirs
        for entry in entries:
            if entry.name == WORKSPACE_DIRNAME:
                continue
            rel = rel_prefix + entry.name
            if entry.name.startswith("."):
                self._hidden(entry, rel)
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks; a loop raises OSError or repeats an inode
            except OSError:
                is_dir = False
            if is_dir and self.skip and Path(entry.path).resolve() in self.skip:
                continue
            if is_dir:
                dirs.append(Path(entry.path))
            elif _is_file(entry):
                files.append(Path(entry.path))
            elif entry.is_symlink():
                self.findings.append(
                    Finding(
                        "symlink_loop",
                        Severity.WARNING,
                        "Symlink cannot be followed (loop or broken)",
                        {},
                        rel,
                    )
                )
        return files, dirs

    def _hidden(self, entry: os.DirEntry[str], rel: str) -> None:
        image = is_image_name(entry.name)
        message = (
            "Hidden image: Kohya's file listing skips names starting with '.', so it is not trained"
            if image
            else "Hidden file or folder in the dataset (ignored)"
        )
        severity = Severity.WARNING if image else Severity.INFO
        self.findings.append(Finding("hidden_file", severity, message, {"image": image}, rel))


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _concepts_of(root: Path, prefix: str, is_reg: bool, walker: _Walker) -> tuple[str, list[Concept]]:
    """Concepts of one root (training or regularization) and its layout."""
    walker.enter(root, prefix or ".")
    files, dirs = walker.list(root, prefix)
    concept_dirs = [d for d in dirs if parse_concept_folder(os.fsdecode(d.name))]
    if concept_dirs:
        concepts = []
        for folder in dirs:
            rel = prefix + folder.name + "/"
            parsed = parse_concept_folder(folder.name)
            if parsed is None:
                _report_unread_folder(folder, rel, walker)
                continue
            if not walker.enter(folder, rel.rstrip("/")):
                continue
            concepts.append(_concept(folder, parsed, rel, is_reg, walker))
        _report_loose_images(files, prefix, walker)
        return "kohya", concepts
    parsed = parse_concept_folder(root.resolve().name)
    layout = "concept_folder" if parsed else "plain"
    name = parsed or (1, root.resolve().name)
    concept = _concept_from_listing(root, name, prefix, is_reg, walker, files, dirs, report_empty=False)
    return layout, [concept]


def _concept(folder: Path, parsed: tuple[int, str], rel: str, is_reg: bool, walker: _Walker) -> Concept:
    files, dirs = walker.list(folder, rel)
    return _concept_from_listing(folder, parsed, rel, is_reg, walker, files, dirs)


def _concept_from_listing(
    folder: Path,
    parsed: tuple[int, str],
    rel_prefix: str,
    is_reg: bool,
    walker: _Walker,
    files: list[Path],
    dirs: list[Path],
    report_empty: bool = True,
) -> Concept:
    repeats, name = parsed
    repeats = _checked_repeats(repeats, rel_prefix, walker)
    concept = Concept(name=name, repeats=repeats, folder=folder, is_reg=is_reg)
    for path in files:
        if is_image_name(path.name):
            concept.items.append(Item(path, rel_prefix + path.name, name, repeats, None, is_reg))
            if not path.name.endswith(KOHYA_EXTENSIONS):
                walker.findings.append(_kohya_extension_finding(rel_prefix + path.name))
    for sub in dirs:
        sub_rel = rel_prefix + sub.name
        if walker.enter(sub, sub_rel):
            _report_nested(sub, sub_rel + "/", walker)
    if not concept.items and report_empty:
        walker.findings.append(
            Finding(
                "no_images",
                Severity.WARNING,
                f"Concept folder '{folder.name}' holds no images",
                {},
                rel_prefix,
            )
        )
    return concept


def _kohya_extension_finding(rel: str) -> Finding:
    suffix = Path(rel).suffix
    return Finding(
        "kohya_skips_extension",
        Severity.WARNING,
        f"Kohya sd-scripts does not list '{suffix}' files (it reads .png .jpg .jpeg .webp .bmp, all lower or all "
        "upper case): convert or rename it, or train with dreamcurate",
        {"extension": suffix, "kohya_reads": list(KOHYA_EXTENSIONS)},
        rel,
    )


def _count_images(folder: Path, rel: str, walker: _Walker, depth: int = 0) -> int:
    """Images anywhere under ``folder`` (loop-safe, bounded depth)."""
    if depth > 32:
        return 0
    files, dirs = walker.list(folder, rel)
    count = sum(1 for f in files if is_image_name(f.name))
    for sub in dirs:
        if walker.enter(sub, rel + sub.name):
            count += _count_images(sub, rel + sub.name + "/", walker, depth + 1)
    return count


#: More repeats than anyone means: the step arithmetic of such a folder name would run out of memory.
MAX_REPEATS = 10_000


def _checked_repeats(repeats: int, rel: str, walker: _Walker) -> int:
    """``repeats``, capped at :data:`MAX_REPEATS` with an error finding; a warning for 0 (never trained)."""
    where = rel.rstrip("/") or "."
    if repeats > MAX_REPEATS:
        walker.findings.append(
            Finding(
                "repeats_out_of_range",
                Severity.ERROR,
                f"Repeat count {repeats} in the folder name is absurd; counted as {MAX_REPEATS} (rename the folder)",
                {"repeats": repeats, "max": MAX_REPEATS},
                where,
            )
        )
        return MAX_REPEATS
    if repeats == 0:
        walker.findings.append(
            Finding(
                "repeats_zero",
                Severity.WARNING,
                "Repeat count 0 in the folder name: Kohya trains these images 0 times per epoch",
                {"repeats": 0},
                where,
            )
        )
    return repeats


def _report_nested(folder: Path, rel: str, walker: _Walker) -> None:
    count = _count_images(folder, rel, walker)
    if count:
        walker.findings.append(
            Finding(
                "nested_images",
                Severity.WARNING,
                f"{count} image(s) in a subfolder: Kohya reads only the concept folder itself, so they are not trained",
                {"images": count},
                rel.rstrip("/"),
            )
        )


def _report_unread_folder(folder: Path, rel: str, walker: _Walker) -> None:
    if not walker.enter(folder, rel.rstrip("/")):
        return
    count = _count_images(folder, rel, walker)
    walker.findings.append(
        Finding(
            "folder_no_repeats",
            Severity.WARNING if count else Severity.INFO,
            f"Folder has no '<repeats>_' prefix (e.g. '10_{folder.name}'): Kohya skips it"
            + (f" and its {count} image(s)" if count else ""),
            {"images": count, "suggested": f"10_{folder.name}"},
            rel.rstrip("/"),
        )
    )


def _report_loose_images(files: list[Path], prefix: str, walker: _Walker) -> None:
    loose = [f for f in files if is_image_name(f.name)]
    if loose:
        walker.findings.append(
            Finding(
                "nested_images",
                Severity.WARNING,
                f"{len(loose)} image(s) directly in the root: Kohya reads only the <repeats>_<name> folders",
                {"images": len(loose), "examples": [prefix + f.name for f in loose[:5]]},
                prefix.rstrip("/") or ".",
            )
        )


def _plain_layout_finding(concept: Concept) -> Finding:
    return Finding(
        "plain_folder",
        Severity.INFO,
        f"Not a Kohya layout: taken as one concept '{concept.name}' with 1 repeat. Kohya expects "
        f"ROOT/<repeats>_<name>/ folders, e.g. train/10_{concept.name}/",
        {"concept": concept.name, "repeats": 1},
    )


#: the longest file name most file systems hold, in bytes
NAME_MAX = 255


def _is_file_path(path: Path) -> bool:
    """``Path.is_file`` that answers False for a name the file system refuses (too long) instead of raising."""
    try:
        return path.is_file()
    except OSError:
        return False


def _leaves(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` is a symlink whose target lies outside every one of ``roots``."""
    try:
        if not path.is_symlink():
            return False
    except OSError:
        return False
    target = path.resolve()
    return not any(target.is_relative_to(r.resolve()) for r in roots)


def _drop_linked_out_images(concepts: list[Concept], roots: list[Path]) -> list[Finding]:
    """Images that are links leading out of the dataset are findings, never items: nothing reads, trains or exports
    a file of the user's that only a link put in the folder (a dataset shared as an archive may carry any link)."""
    findings = []
    for concept in concepts:
        kept = []
        for item in concept.items:
            if _leaves(item.path, roots):
                findings.append(
                    Finding(
                        "image_symlink_outside",
                        Severity.WARNING,
                        "Image is a link to a file outside the dataset; not read, not trained, not exported",
                        {},
                        item.rel,
                    )
                )
            else:
                kept.append(item)
        concept.items[:] = kept
    return findings


def _assign_captions(
    concepts: list[Concept], forced: str | None, roots: list[Path] | None = None
) -> tuple[str, list[Finding]]:
    """Set each item's caption path for the extension training reads; report a mismatch, never guess. A caption
    that is a link leading out of the dataset is a finding and is never read (it could be any file of the user's)."""
    extension = _normalise_ext(forced) if forced else ".txt"
    other = ".caption" if extension == ".txt" else ".txt"
    with_ext = with_other = 0
    linked_out: list[Finding] = []
    for concept in concepts:
        for index, item in enumerate(concept.items):
            stem = item.path.with_suffix("")
            wanted = Path(str(stem) + extension)
            if len(os.fsencode(wanted.name)) > NAME_MAX:
                linked_out.append(
                    Finding(
                        "name_too_long",
                        Severity.WARNING,
                        f"Name too long for a caption beside it ({extension} makes it over {NAME_MAX} bytes); "
                        "shorten the image's name",
                        {"bytes": len(os.fsencode(wanted.name))},
                        item.rel,
                    )
                )
            elif roots and _leaves(wanted, roots):
                linked_out.append(
                    Finding(
                        "caption_symlink_outside",
                        Severity.WARNING,
                        "Caption is a link to a file outside the dataset; not read, not exported, not edited",
                        {"caption": wanted.name},
                        item.rel,
                    )
                )
            elif _is_file_path(wanted):
                with_ext += 1
                concept.items[index] = Item(
                    item.path, item.rel, item.concept, item.repeats, wanted, item.is_reg
                )
            elif _is_file_path(Path(str(stem) + other)):
                with_other += 1
    findings: list[Finding] = linked_out
    if with_other:
        source = "--caption-extension" if forced else "the default"
        findings.append(
            Finding(
                "caption_extension_mismatch",
                Severity.WARNING if with_other > with_ext else Severity.INFO,
                f"{with_other} image(s) have '{other}' captions but training reads '{extension}' ({source}); "
                f"pass --caption-extension {other} or rename them (Kohya's own default is '.caption')",
                {"reads": extension, "found": other, "with_reads": with_ext, "with_other": with_other},
            )
        )
    return extension, findings


def _normalise_ext(ext: str) -> str:
    return check_caption_extension(ext if ext.startswith(".") else "." + ext)


#: extensions of files that are not captions: an edit with one of them would rewrite images, configs, models
NOT_CAPTION_EXTENSIONS = (
    *IMAGE_EXTENSIONS,
    *(".avif", ".heic", ".jxl", ".json", ".toml", ".sqlite", ".db", ".safetensors", ".ckpt", ".pt", ".pth"),
    *(".bin", ".npz", ".npy", ".zip", ".py", ".sh", ".exe"),
)


def check_caption_extension(ext: str) -> str:
    """``ext`` when it can name caption files (``.txt``, ``.caption``, ...); ValueError for an image extension or
    another kind of file (``tags --caption-extension .bmp --apply`` would otherwise rewrite images as text)."""
    name = ext[1:]
    if (
        not ext.startswith(".")
        or not name
        or len(name) > 16
        or not all(ch.isalnum() or ch in "_-" for ch in name)
    ):
        raise ValueError(f"caption extension {ext!r} is not a file extension like .txt or .caption")
    if ext.lower() in NOT_CAPTION_EXTENSIONS:
        raise ValueError(
            f"caption extension {ext!r} names images or other files, not captions (use .txt or .caption)"
        )
    return ext
