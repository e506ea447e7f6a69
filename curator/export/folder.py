"""Export: the curated Kohya folder, its manifest and its configs, written atomically.

Layout of ``OUT``::

    OUT/img/<repeats>_<name>/   kept training images (hard links where possible, else copies) + captions
    OUT/reg/<repeats>_<name>/   kept regularization images, when the dataset has a regularization folder
    OUT/manifest.json           every source item: kept or dropped, the rule and reason, sha256, where it went
    OUT/dataset.toml            Kohya sd-scripts dataset config naming exactly the exported folders
    OUT/train.toml              our trainer's config (Kohya argument names)

Everything is written into a temporary folder beside ``OUT`` and renamed into place, so a crash or a kill leaves
the old ``OUT`` or the new one, never half of one. The user's files are only read: images are hard-linked or
copied (never moved), captions are copied, or written from the review's caption edits.

Example::

    report = export_dataset(result, Path("curated"), ExportOptions(strict=True, target_size=100))
    print(report.kept, report.dropped, [f.rel for f in report.folders])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curator.export import kohya_config
from curator.export.kohya_config import ExportedFolder, TrainingSettings
from curator.fsutil import atomic_write_text
from curator.review.decisions import DecisionStore
from curator.review.selection import SelectionOptions, Verdict, duplicate_clusters, select, summarize
from curator.review.subset import balanced_repeats, diverse_subset
from curator.scan.results import ScanResult

MANIFEST_SCHEMA = "dreamcurate.export/1"


class ExportError(Exception):
    """An export that cannot be done (OUT exists without force, OUT would contain the dataset, ...)."""


@dataclass
class ExportOptions:
    """What to export and how."""

    strict: bool = False  # drop items with warnings too
    force: bool = False  # replace an existing OUT
    target_size: int | None = None  # per concept: keep at most N images, chosen for diversity
    balance: bool = False  # use the balanced repeats in the folder names
    hardlink: bool = True  # hard-link images when source and OUT share a file system (else copy)
    base_model: str = ""  # written to train.toml as pretrained_model_name_or_path
    training: TrainingSettings | None = None  # None: from the scan settings
    plan: dict[str, Any] | None = None  # the plan's JSON (steps, stop step) for train.toml
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields to set in train.toml
    extra_files: dict[str, Path] = field(
        default_factory=dict
    )  # name in OUT -> file copied there (report.html)


@dataclass
class ExportReport:
    """What an export did."""

    out: Path
    verdicts: dict[str, Verdict]
    folders: list[ExportedFolder]
    suggested_repeats: dict[str, int]
    linked: int = 0
    copied: int = 0

    @property
    def kept(self) -> int:
        """Number of items exported."""
        return sum(v.kept for v in self.verdicts.values())

    @property
    def dropped(self) -> int:
        """Number of items left out."""
        return sum(not v.kept for v in self.verdicts.values())


def sha256_file(path: Path) -> str | None:
    """The file's sha256 (hex), or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def training_settings(result: ScanResult) -> TrainingSettings:
    """The training settings the scan assumed (resolution, buckets, caption extension)."""
    s = result.settings
    return TrainingSettings(
        resolution=s.resolution,
        min_bucket_reso=s.min_bucket_reso,
        max_bucket_reso=s.max_bucket_reso,
        bucket_reso_steps=s.bucket_reso_steps,
        bucket_no_upscale=s.bucket_no_upscale,
        caption_extension=result.dataset.caption_extension,
    )


def _check_out(result: ScanResult, out: Path, force: bool) -> None:
    check_export_target(out, force, result.dataset.root, result.dataset.reg_root)


def check_export_target(out: Path, force: bool, dataset_root: Path, reg_root: Path | None = None) -> None:
    """Raise :class:`ExportError` unless ``out`` may receive an export: not the dataset, not inside it, not
    holding it; an existing ``out`` only with ``force`` and only when empty or an earlier export (never a folder
    of the user's own files). Cheap: callers such as ``run`` use it before the scan."""
    out = Path(out).absolute().resolve()
    protected = [Path(dataset_root).resolve()]
    if reg_root is not None:
        protected.append(Path(reg_root).resolve())
    for root in protected:
        if out == root or out in root.parents:
            raise ExportError(f"refusing to export into {out}: it contains the dataset {root}")
        if root in out.parents:  # the next scan would read the exported copies as part of the dataset
            raise ExportError(
                f"refusing to export into {out}: it is inside the dataset {root}; pick a folder outside"
            )
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; use --force to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    # --force must never delete a folder of the user's own files
    if out.is_dir() and not _is_replaceable(out):
        raise ExportError(
            f"refusing to replace {out}: it is not an earlier dreamcurate export (no manifest.json); "
            "pick another OUT or empty it yourself"
        )


def _is_replaceable(out: Path) -> bool:
    """True for an empty folder or one an earlier export wrote (its manifest.json carries our schema)."""
    if not any(out.iterdir()):
        return True
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("schema", "")).startswith("dreamcurate.export/")


def _check_something_kept(result: ScanResult, verdicts: dict[str, Verdict]) -> None:
    """Refuse an export without a single training image: its configs would point at an empty folder."""
    train = [r.item.rel for r in result.records if not r.item.is_reg]
    if any(verdicts[rel].kept for rel in train if rel in verdicts):
        return
    if not train:
        raise ExportError(f"nothing to export: no training images found in {result.dataset.root}")
    rules = summarize(v for rel, v in verdicts.items() if rel in set(train))
    why = ", ".join(f"{n} {rule}" for rule, n in sorted(rules.items()))
    raise ExportError(
        f"nothing to export: all {len(train)} training images were left out ({why}); "
        "run 'dreamcurate scan' to see why"
    )


def _apply_subset(result: ScanResult, verdicts: dict[str, Verdict], size: int) -> None:
    """Mark the items a diverse subset leaves out (per training concept) with rule ``subset``."""
    keepers = {c.keeper for c in duplicate_clusters(result)}
    for concept in result.dataset.concepts:
        if concept.is_reg:
            continue
        records = [result.record(i.rel) for i in concept.items if verdicts[i.rel].kept]
        if len(records) <= size:
            continue
        forced = {
            r.item.rel for r in records if r.item.rel in keepers or verdicts[r.item.rel].rule == "review"
        }
        chosen = set(diverse_subset(records, size, forced=forced))
        for r in records:
            if r.item.rel not in chosen:
                verdicts[r.item.rel] = Verdict(
                    r.item.rel, False, "subset", f"left out of the diverse subset of {size}", ["subset"]
                )


def _place_image(src: Path, dst: Path, hardlink: bool) -> bool:
    """Hard-link (True) or copy (False) ``src`` to ``dst``; never moves the source."""
    if hardlink:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass  # other file system, or links not allowed: copy instead
    shutil.copy2(src, dst)
    return False


def _write_folders(
    result: ScanResult,
    verdicts: dict[str, Verdict],
    tmp: Path,
    repeats: dict[str, int],
    edits: dict[str, str],
    options: ExportOptions,
    ext: str,
) -> tuple[list[ExportedFolder], dict[str, str], int, int]:
    """Place kept images and captions under ``tmp``; returns folders, rel -> exported path, linked, copied."""
    folders: list[ExportedFolder] = []
    placed: dict[str, str] = {}
    linked = copied = 0
    for concept in result.dataset.concepts:
        items = [i for i in concept.items if verdicts[i.rel].kept]
        if not items:
            continue
        subdir = "reg" if concept.is_reg else "img"
        folder = ExportedFolder(
            subdir, concept.name, repeats.get(concept.name, concept.repeats), len(items), concept.is_reg
        )
        target = tmp / folder.rel
        target.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        for item in items:
            stem, suffix = item.path.stem, item.path.suffix.lower()
            name, n = stem, 1
            while name.lower() in used:  # two items with one stem (a.png and a.jpg) must not share a caption
                n += 1
                name = f"{stem}_{n}"
            used.add(name.lower())
            if _place_image(item.path, target / f"{name}{suffix}", options.hardlink):
                linked += 1
            else:
                copied += 1
            edited = edits.get(item.rel)
            if edited is not None:
                atomic_write_text(target / f"{name}{ext}", edited)
            elif item.caption_path is not None and item.caption_path.is_file():
                shutil.copyfile(item.caption_path, target / f"{name}{ext}")
            placed[item.rel] = f"{folder.rel}/{name}{suffix}"
        folders.append(folder)
    return folders, placed, linked, copied


def _manifest(
    result: ScanResult,
    verdicts: dict[str, Verdict],
    placed: dict[str, str],
    folders: list[ExportedFolder],
    edits: dict[str, str],
    options: ExportOptions,
    suggested: dict[str, int],
) -> dict[str, Any]:
    items = []
    for record in result.records:
        v = verdicts[record.item.rel]
        items.append(
            {
                "path": record.item.rel,
                "concept": record.item.concept,
                "is_reg": record.item.is_reg,
                "kept": v.kept,
                "rule": v.rule,
                "reason": v.reason,
                "codes": v.codes,
                "sha256": sha256_file(record.item.path),
                "exported_as": placed.get(record.item.rel),
                "caption_edited": record.item.rel in edits,
            }
        )
    return {
        "schema": MANIFEST_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(result.dataset.root),
        "reg_source": str(result.dataset.reg_root) if result.dataset.reg_root else None,
        "options": {"strict": options.strict, "target_size": options.target_size, "balance": options.balance},
        "summary": {
            "items": len(items),
            "kept": sum(i["kept"] for i in items),
            "dropped": sum(not i["kept"] for i in items),
        },
        "folders": [
            {"path": f.rel, "repeats": f.repeats, "images": f.count, "is_reg": f.is_reg} for f in folders
        ],
        "suggested_repeats": suggested,
        "items": items,
    }


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is renamed away first and deleted after."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out: Path) -> None:
    """Delete temporary folders a killed export of the same OUT left behind (ours only, by name)."""
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for stale in out.parent.glob(pattern):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


def _with_keep_tokens(
    result: ScanResult,
    verdicts: dict[str, Verdict],
    folders: list[ExportedFolder],
    settings: TrainingSettings,
) -> tuple[list[ExportedFolder], TrainingSettings]:
    """Per-concept keep_tokens from the caption audit; train.toml (one value) takes the largest concept's."""
    from curator.plan.handoff import keep_tokens_advice

    advice = keep_tokens_advice(result, {rel for rel, v in verdicts.items() if v.kept})
    if not advice:
        return folders, settings
    folders = [f if f.is_reg else replace(f, keep_tokens=advice.get(f.name)) for f in folders]
    train = [f for f in folders if not f.is_reg and f.keep_tokens is not None]
    if train:
        settings = replace(settings, keep_tokens=max(train, key=lambda f: f.count).keep_tokens)
    return folders, settings


def plan_verdicts(
    result: ScanResult, store: DecisionStore | None, options: ExportOptions
) -> tuple[dict[str, Verdict], dict[str, int]]:
    """The verdict for every item (decisions, policy, subset) and the repeats to use per concept."""
    verdicts = select(result, store, SelectionOptions(strict=options.strict))
    if options.target_size is not None:
        _apply_subset(result, verdicts, options.target_size)
    counts = {
        c.name: (sum(verdicts[i.rel].kept for i in c.items), c.repeats)
        for c in result.dataset.concepts
        if not c.is_reg
    }
    suggested = balanced_repeats(counts)
    return verdicts, suggested


def base_family(base_model: str) -> str | None:
    """The family of the base model at ``base_model`` from its header ("sd1", "sd2", "sdxl"), or None."""
    from curator.plan.modelfile import facts_for_plan

    facts, _ = facts_for_plan(base_model)
    return facts.family if facts else None


def export_dataset(
    result: ScanResult, out: Path, options: ExportOptions | None = None, store: DecisionStore | None = None
) -> ExportReport:
    """Export the curated dataset of ``result`` to ``out`` (see the module docstring). Raises :class:`ExportError`."""
    options = options or ExportOptions()
    out = Path(out).absolute()
    _check_out(result, out.resolve(), options.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    verdicts, suggested = plan_verdicts(result, store, options)
    _check_something_kept(result, verdicts)
    repeats = suggested if options.balance else {}
    edits = store.captions() if store is not None else {}
    settings = replace(options.training or training_settings(result))  # a copy: the caller's stays as given
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        folders, placed, linked, copied = _write_folders(
            result, verdicts, tmp, repeats, edits, options, settings.caption_extension
        )
        if settings.keep_tokens is None:
            folders, settings = _with_keep_tokens(result, verdicts, folders, settings)
        manifest = _manifest(result, verdicts, placed, folders, edits, options, suggested)
        manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(tmp / "manifest.json", manifest_text, errors="backslashreplace")
        atomic_write_text(tmp / "dataset.toml", kohya_config.dataset_toml(out, folders, settings))
        config = kohya_config.train_config(
            out, folders, settings, options.base_model, options.plan, options.train_overrides
        )
        atomic_write_text(tmp / "train.toml", kohya_config.train_toml(config))
        if base_family(options.base_model) == "sdxl":
            kohya_sdxl = kohya_config.sdxl_train_config(out, config)
            atomic_write_text(tmp / "sdxl_train.toml", kohya_config.sdxl_train_toml(kohya_sdxl))
        for name, source in options.extra_files.items():
            shutil.copyfile(source, tmp / Path(name).name)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportReport(out, verdicts, folders, suggested, linked, copied)
