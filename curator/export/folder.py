"""Export: the curated Kohya folder, its manifest and its configs, written atomically.

Layout of ``OUT``::

    OUT/img/<repeats>_<name>/   kept training images (hard links where possible, else copies) + captions
    OUT/reg/<repeats>_<name>/   kept regularization images, when the dataset has a regularization folder
    OUT/manifest.json           every source item: kept or dropped, the rule and reason, sha256, where it went
    OUT/dataset.toml            Kohya sd-scripts dataset config naming exactly the exported folders
    OUT/train.toml              our trainer's config (Kohya argument names)

Everything is written into a temporary folder beside ``OUT`` and swapped into place by
:mod:`curator.export.replace`, so a crash or a kill leaves the old ``OUT`` or the new one, never half of one, and
``--force`` replaces only what an earlier export wrote: a trained model or the user's files in ``OUT`` stay. The user's files are only read: images are hard-linked or
copied (never moved), captions are copied, or written from the review's caption edits.

Example::

    curation = build_curation(result, store, Policy(target_size=100))
    plan = plan_curation(curation, PlanOptions(settings))
    report = export_dataset(curation, Path("curated"), ExportOptions(settings=settings), plan)
    print(report.kept, report.dropped, [f.rel for f in report.folders])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curator.dataset.discover import KOHYA_EXTENSIONS, Item
from curator.export import kohya_config
from curator.export import replace as replace_mod
from curator.export.kohya_config import ExportedFolder
from curator.fsutil import atomic_write_text
from curator.progress import progress_bar
from curator.review.curation import Curation
from curator.review.selection import Verdict, summarize
from curator.scan.results import ScanResult
from curator.settings.config import TrainConfig

MANIFEST_SCHEMA = "dreamcurate.export/1"


class ExportError(Exception):
    """An export that cannot be done (OUT exists without force, OUT would contain the dataset, ...)."""


@dataclass
class ExportOptions:
    """How to write the export (what to keep is the curation's; the training settings go into both configs)."""

    force: bool = False  # replace an existing OUT (only an earlier export)
    hardlink: bool = True  # hard-link images when source and OUT share a file system (else copy)
    base_model: str = ""  # written to train.toml as pretrained_model_name_or_path
    settings: TrainConfig = field(default_factory=TrainConfig)  # the training settings (the plan's)
    extra_files: dict[str, Path] = field(
        default_factory=dict
    )  # name in OUT -> file copied there (report.html)
    # a progress bar on stderr while images are placed (on a terminal, 50 images or more)
    progress: bool = False


@dataclass
class ExportReport:
    """What an export did."""

    out: Path
    verdicts: dict[str, Verdict]
    folders: list[ExportedFolder]
    suggested_repeats: dict[str, int]
    linked: int = 0
    copied: int = 0
    converted: int = 0  # images written as upright PNG copies (EXIF-rotated, or a format Kohya skips)
    curation: Curation | None = None
    settings: TrainConfig | None = None
    plan: dict[str, Any] | None = None
    kept_entries: list[str] = field(default_factory=list)  # entries of the old OUT not ours, left in place

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
    if out.is_dir() and not replace_mod.is_replaceable(out):
        raise ExportError(
            f"refusing to replace {out}: it is not an earlier dreamcurate export (no manifest.json); "
            "pick another OUT or empty it yourself"
        )


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


def needs_upright_copy(path: Path, orientation: int | None = None) -> str | None:
    """Why Kohya would not read ``path`` as we plan it (None: it would): a format its folder listing skips, or an EXIF
    orientation it never applies (it reads the raw pixels, so the image would land sideways in another bucket).

    ``orientation``: the scan's reading of it (``exif_orientation``); the file is read only without one (a PNG's EXIF
    may follow its pixels, so reading it can mean decoding the image)."""
    if not path.name.endswith(KOHYA_EXTENSIONS):
        return f"{path.suffix or 'no extension'} is not a format Kohya reads"
    if orientation is None:
        try:
            from PIL import Image

            with Image.open(path) as img:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
        except (OSError, ValueError, SyntaxError):
            return None
    if orientation not in (0, 1):
        return f"EXIF orientation {orientation}, which Kohya does not apply"
    return None


def _upright_copy(src: Path, dst: Path) -> None:
    """``src`` as training sees it (EXIF orientation applied), written as a PNG at ``dst``; never a link."""
    from PIL import Image, ImageOps

    with Image.open(src) as img:
        upright = ImageOps.exif_transpose(img)
        if upright.mode not in ("RGB", "RGBA", "L", "LA"):
            upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
        tmp = dst.with_name(f".{dst.name}.tmp")
        upright.save(tmp, format="PNG", compress_level=1)  # lossless either way; level 6 took 40 % longer
    os.replace(tmp, dst)


def _place_image(src: Path, dst: Path, hardlink: bool) -> bool:
    """Hard-link (True) or copy (False) ``src`` to ``dst``; never moves the source."""
    src = src.resolve()  # a link (a relative one above all) would point nowhere from OUT: place what it names
    if hardlink:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass  # other file system, or links not allowed: copy instead
    shutil.copy2(src, dst)
    return False


@dataclass
class _Placed:
    """What ``_write_folders`` put under the temporary folder."""

    folders: list[ExportedFolder]
    paths: dict[str, str]  # rel -> exported path
    converted: dict[str, str]  # rel -> why it was written as an upright copy
    linked: int = 0
    copied: int = 0


#: Upright copies written at once (each a decode, a transpose and a PNG encode; Pillow releases the GIL for them).
UPRIGHT_THREADS = 4


def _write_folders(curation: Curation, tmp: Path, options: ExportOptions, ext: str) -> _Placed:
    """Place kept images and captions under ``tmp``: links or copies as they come, the upright copies (seconds each
    for a large photo) on a few threads; one progress bar over all of them."""
    placed = _Placed([], {}, {})
    orientation = {r.item.rel: r.metrics.get("exif_orientation") for r in curation.result.records}
    folders = [
        (concept, [i for i in concept.items if curation.verdicts[i.rel].kept])
        for concept in curation.result.dataset.concepts
    ]
    threads = max(1, min(UPRIGHT_THREADS, os.cpu_count() or 1))
    total = sum(len(items) for _, items in folders)
    with (
        progress_bar("exporting", total, options.progress) as advance,
        ThreadPoolExecutor(max_workers=threads) as pool,
    ):
        upright: list[Future[None]] = []

        def place(item: Item, target: Path, name: str) -> None:
            why = needs_upright_copy(item.path, orientation.get(item.rel))
            image = target / f"{name}{'.png' if why else item.path.suffix.lower()}"
            if why:
                upright.append(pool.submit(_upright_copy, item.path, image))
                placed.converted[item.rel] = why
            else:
                if _place_image(item.path, image, options.hardlink):
                    placed.linked += 1
                else:
                    placed.copied += 1
                advance()
            edited = curation.edits.get(item.rel)
            if edited is not None:
                atomic_write_text(target / f"{name}{ext}", edited)
            elif item.caption_path is not None and item.caption_path.is_file():
                shutil.copyfile(item.caption_path, target / f"{name}{ext}")
            placed.paths[item.rel] = image.relative_to(tmp).as_posix()

        try:
            for concept, items in folders:
                if not items:
                    continue
                n = concept.repeats if concept.is_reg else curation.repeats.get(concept.name, concept.repeats)
                folder = ExportedFolder(
                    "reg" if concept.is_reg else "img", concept.name, n, len(items), concept.is_reg
                )
                target = tmp / folder.rel
                target.mkdir(parents=True, exist_ok=True)
                used: set[str] = set()
                for item in items:
                    place(item, target, _free_name(item.path.stem, used))
                placed.folders.append(folder)
            for future in as_completed(upright):
                future.result()  # the first failure stops the export (nothing is installed)
                advance()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return placed


def _free_name(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... : two items with one stem (a.png and a.jpg) must not share a caption
    (nor, as upright PNG copies, an image name). Marks the name used."""
    name, k = stem, 1
    while name.lower() in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name.lower())
    return name


def _manifest(curation: Curation, placed: _Placed, plan: dict[str, Any] | None) -> dict[str, Any]:
    items = []
    for record in curation.result.records:
        v = curation.verdicts[record.item.rel]
        items.append(
            {
                "path": record.item.rel,
                "concept": record.item.concept,
                "is_reg": record.item.is_reg,
                "kept": v.kept,
                "rule": v.rule,
                "reason": v.reason,
                "codes": v.codes,
                # the scan's own digest of the bytes it read (this export's scan revalidated every file by size
                # and mtime); read here only for a file the scan could not read
                "sha256": record.metrics.get("sha256") or sha256_file(record.item.path),
                "exported_as": placed.paths.get(record.item.rel),
                "upright_copy": placed.converted.get(record.item.rel),
                "caption_edited": record.item.rel in curation.edits,
            }
        )
    dataset = curation.result.dataset
    return {
        "schema": MANIFEST_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(dataset.root),
        "reg_source": str(dataset.reg_root) if dataset.reg_root else None,
        "options": curation.policy.to_json(),
        "summary": {
            "items": len(items),
            "kept": sum(i["kept"] for i in items),
            "dropped": sum(not i["kept"] for i in items),
            "left_out": curation.left_out(),
        },
        "folders": [
            {"path": f.rel, "repeats": f.repeats, "images": f.count, "is_reg": f.is_reg}
            for f in placed.folders
        ],
        "suggested_repeats": curation.suggested_repeats,
        "plan": _plan_headline(plan),
        "items": items,
    }


def _plan_headline(plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan's numbers the manifest keeps (the whole plan is OUT/plan.json)."""
    if not plan:
        return None
    keys = ("total_steps", "steps_per_epoch", "epochs", "stop_text_encoder_training", "buckets")
    return {k: plan.get(k) for k in keys}


def _check_config_names(result: ScanResult, out: Path) -> None:
    """The configs (TOML, UTF-8 only) name OUT and each concept folder: a name that is not UTF-8 cannot be written
    there, so refuse before anything is written, naming it."""
    from curator.textsafe import safe

    for what, name in [("OUT", str(out)), *(("concept", c.name) for c in result.dataset.concepts)]:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ExportError(
                f"the {what} name {safe(name)} is not valid UTF-8, which dataset.toml cannot hold; rename it"
            ) from None


def _prepare_out(result: ScanResult, out: Path, force: bool) -> None:
    """Settle what a killed export left (finish or undo its swap, delete its temporaries), then check ``out``."""
    protected = [result.dataset.root, *([result.dataset.reg_root] if result.dataset.reg_root else [])]
    if out.parent.is_dir():
        try:
            replace_mod.recover(out)
        except (replace_mod.ReplaceError, OSError) as exc:
            raise ExportError(f"an interrupted export of {out} could not be settled: {exc}") from exc
        replace_mod.remove_stale(out, protected)
    _check_out(result, out.resolve(), force)
    _check_config_names(result, out)
    out.parent.mkdir(parents=True, exist_ok=True)


def _install(tmp: Path, out: Path) -> list[str]:
    """Replace ``out`` by the finished tree ``tmp``, keeping every entry of the old ``out`` an export did not write;
    returns those entries."""
    try:
        replace_mod.finish_tree(tmp)
        keep = replace_mod.foreign_entries(out) if out.is_dir() else []
        replace_mod.check_collisions(tmp, keep)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # from here on the swap journal, not this process, decides what may be deleted: tmp may hold the old OUT
    replace_mod.swap_into_place(tmp, out, keep)
    return keep


def _keep_tokens(
    curation: Curation, folders: list[ExportedFolder], settings: TrainConfig
) -> tuple[list[ExportedFolder], TrainConfig]:
    """keep_tokens per subset: the one set in the settings, else the caption audit's advice per concept (train.toml,
    one value, takes the largest concept's)."""
    if settings.keep_tokens:
        return folders, settings
    advice = curation.keep_tokens()
    if not advice:
        return folders, settings
    folders = [f if f.is_reg else replace(f, keep_tokens=advice.get(f.name)) for f in folders]
    train = [f for f in folders if not f.is_reg and f.keep_tokens is not None]
    if train:
        settings = settings.replace(keep_tokens=max(train, key=lambda f: f.count).keep_tokens or 0)
    return folders, settings


def base_family(base_model: str) -> str | None:
    """The family of the base model at ``base_model`` from its header ("sd1", "sd2", "sdxl"), or None."""
    from curator.plan.modelfile import facts_for_plan

    facts, _ = facts_for_plan(base_model)
    return facts.family if facts else None


def export_dataset(
    curation: Curation, out: Path, options: ExportOptions | None = None, plan: dict[str, Any] | None = None
) -> ExportReport:
    """Export what ``curation`` keeps to ``out`` (see the module docstring), with ``options.settings`` in both
    configs and ``plan`` (the plan's JSON, built from the same curation and settings) as OUT/plan.json. Raises
    :class:`ExportError`."""
    options = options or ExportOptions()
    result = curation.result
    out = Path(out).absolute()
    _prepare_out(result, out, options.force)
    _check_something_kept(result, curation.verdicts)
    settings = options.settings.replace(caption_extension=result.dataset.caption_extension)
    tmp = replace_mod.new_tree(out)
    try:
        placed = _write_folders(curation, tmp, options, settings.caption_extension)
        folders, settings = _keep_tokens(curation, placed.folders, settings)
        manifest = _manifest(curation, placed, plan)
        manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(tmp / "manifest.json", manifest_text, errors="backslashreplace")
        if plan:
            plan_text = json.dumps(plan, indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(tmp / "plan.json", plan_text, errors="backslashreplace")
        atomic_write_text(tmp / "dataset.toml", kohya_config.dataset_toml(out, folders, settings))
        config = kohya_config.train_config(out, folders, settings, options.base_model)
        atomic_write_text(tmp / "train.toml", kohya_config.train_toml(config))
        if base_family(options.base_model) == "sdxl":
            kohya_sdxl = kohya_config.sdxl_train_config(out, config)
            atomic_write_text(tmp / "sdxl_train.toml", kohya_config.sdxl_train_toml(kohya_sdxl))
        for name, source in options.extra_files.items():
            shutil.copyfile(source, tmp / Path(name).name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        kept_entries = _install(tmp, out)
    except replace_mod.ReplaceError as exc:
        raise ExportError(str(exc)) from exc
    report = ExportReport(
        out, curation.verdicts, folders, curation.suggested_repeats, placed.linked, placed.copied
    )
    report.converted, report.curation, report.settings, report.plan = (
        len(placed.converted),
        curation,
        settings,
        plan,
    )
    report.kept_entries = kept_entries
    return report
