"""``dreamcurate caption DATASET --tagger DIR | --captioner DIR``: captions from a local model, offline.

A dry run unless ``--apply``: it prints per image what it would write next to the caption there now, and audits the
result (CLIP tokens with the tags cut off named, keep_tokens advice, trigger first). ``--apply`` writes through the
same undo journal as ``tags --apply``; ``--undo`` restores the last apply byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curator.commands.output import emit_text

if TYPE_CHECKING:
    from rich.console import Console

    from curator.captions.audit import CaptionAudit
    from curator.captions.merge import CaptionPlan
    from curator.captions.suggest import Source, Suggestions
    from curator.captions.tagger import TagSettings
    from curator.dataset.discover import Dataset, Item
    from curator.dataset.workspace import Workspace

#: the CLIP window training reads; the summary counts captions that do not fit it
TOKEN_LIMIT = 75
#: caption findings the summary shows (the rest belong to ``tags``)
SHOWN_CODES = ("caption_too_long", "trigger_missing", "trigger_not_first", "tag_duplicate")


def _tag_list(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable options that also take comma-separated lists (``--exclude "solo, 1girl"``)."""
    return tuple(t.strip() for value in values for t in value.split(",") if t.strip())


@click.command("caption")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--tagger",
    type=click.Path(file_okay=False, path_type=Path),
    help="WD14-style tagger folder (model.onnx + selected_tags.csv).",
)
@click.option(
    "--captioner",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local transformers image-to-text folder (BLIP, Florence-2).",
)
@click.option(
    "--threshold", type=click.FloatRange(0, 1), default=0.35, show_default=True, help="General tag threshold."
)
@click.option(
    "--character-threshold",
    type=click.FloatRange(0, 1),
    default=0.35,
    show_default=True,
    help="Character tag threshold.",
)
@click.option("--ratings", is_flag=True, help="Add the most likely rating tag (left out by default).")
@click.option("--underscores", is_flag=True, help="Keep danbooru's underscores (default: spaces).")
@click.option("--exclude", multiple=True, callback=_tag_list, metavar="TAGS", help="Tags never written.")
@click.option(
    "--always-first",
    multiple=True,
    callback=_tag_list,
    metavar="TAGS",
    help="Tags moved to the front when found.",
)
@click.option("--trigger", metavar="WORD", help="Trigger word put first in every caption written.")
@click.option("--prompt", "--task", "prompt", help="Captioner: text prefix (BLIP) or task (Florence-2).")
@click.option(
    "--max-length",
    type=click.IntRange(1, 1024),
    default=75,
    show_default=True,
    help="Captioner: longest caption in tokens.",
)
@click.option(
    "--mode",
    type=click.Choice(["new-only", "replace", "append", "prepend"]),
    default="new-only",
    show_default=True,
    help="How suggestions meet an existing caption.",
)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--concept", "concepts", multiple=True, metavar="NAME", help="Caption only these concepts.")
@click.option(
    "--caption-extension", help="Caption extension training reads (default .txt; Kohya's is .caption)."
)
@click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help="Workspace (cache, journals)."
)
@click.option("--json", "json_out", metavar="FILE", help="Write the plan as JSON ('-' = stdout).")
@click.option("--apply", "do_apply", is_flag=True, help="Write the captions (atomic, with an undo journal).")
@click.option("--undo", is_flag=True, help="Restore the captions of the last --apply.")
@click.option("--force", is_flag=True, help="With --undo: restore captions edited since the apply as well.")
def caption(
    dataset: Path,
    tagger: Path | None,
    captioner: Path | None,
    threshold: float,
    character_threshold: float,
    ratings: bool,
    underscores: bool,
    exclude: tuple[str, ...],
    always_first: tuple[str, ...],
    trigger: str | None,
    prompt: str | None,
    max_length: int,
    mode: str,
    batch_size: int,
    concepts: tuple[str, ...],
    caption_extension: str | None,
    workspace: Path | None,
    json_out: str | None,
    do_apply: bool,
    undo: bool,
    force: bool,
) -> None:
    """Caption the training images of DATASET with a local WD14 tagger (--tagger) or an image-to-text model
    (--captioner). Nothing is downloaded; nothing is written without --apply (undo with --undo)."""
    from curator.captions.tagger import TagSettings
    from curator.commands.tags import _discover, _undo
    from curator.dataset.workspace import Workspace

    if not dataset.is_dir():
        raise click.UsageError(
            f"Dataset folder {'is not a folder' if dataset.exists() else 'does not exist'}: {dataset}"
        )
    ws = Workspace.for_dataset(dataset, workspace)
    if undo:
        if do_apply:
            raise click.UsageError("--undo and --apply cannot be combined")
        _undo(ws, force)
        return
    if (tagger is None) == (captioner is None):
        raise click.UsageError("give one of --tagger DIR or --captioner DIR")
    if trigger is not None and (not trigger.strip() or any(c in trigger for c in ",\r\n")):
        raise click.UsageError(f"--trigger {trigger!r}: give one tag (not empty, no comma or line break)")
    ds = _discover(dataset, None, caption_extension)
    mismatch = [f for f in ds.findings if f.code == "caption_extension_mismatch"]
    if mismatch and caption_extension is None:  # writing .txt beside .caption files would be a silent guess
        raise click.UsageError(mismatch[0].message)
    items = _items(ds, concepts)
    settings = TagSettings(threshold, character_threshold, ratings, underscores, exclude, always_first)
    source = _load_source(tagger, captioner, settings, prompt, max_length)
    quiet = json_out == "-"
    result = _run(items, source, ws, batch_size, quiet)
    _report(ds, items, source, result, ws, mode, trigger, do_apply, json_out)


def _items(ds: Dataset, concepts: tuple[str, ...]) -> list[Item]:
    known = {c.name for c in ds.concepts if not c.is_reg}
    unknown = [name for name in concepts if name not in known]
    if unknown:
        raise click.UsageError(f"unknown concept(s): {', '.join(unknown)} (have: {', '.join(sorted(known))})")
    items = [i for i in ds.train_items if not concepts or i.concept in concepts]
    if not items:
        raise click.ClickException(f"No training images in {ds.root}")
    return items


def _load_source(
    tagger: Path | None,
    captioner: Path | None,
    settings: TagSettings,
    prompt: str | None,
    max_length: int,
) -> Source:
    from curator.captions.suggest import CaptionerSource, TaggerSource
    from curator.captions.tagger import MissingExtra, TaggerError, WD14Tagger

    try:
        if tagger is not None:
            return TaggerSource(WD14Tagger.load(tagger), settings)
        from curator.captions.captioner import Captioner

        assert captioner is not None
        return CaptionerSource(Captioner.load(captioner, prompt, max_length))
    except (TaggerError, MissingExtra) as exc:
        raise click.ClickException(str(exc)) from exc


def _run(items: list[Item], source: Source, ws: Workspace, batch_size: int, quiet: bool) -> Suggestions:
    """Run the model with the workspace cache (without one when the workspace cannot be written)."""
    import sqlite3
    from contextlib import ExitStack

    from rich.console import Console
    from rich.progress import Progress

    from curator.captions.store import SuggestionStore
    from curator.captions.suggest import suggest

    with ExitStack() as stack:
        store = None
        try:
            store = stack.enter_context(SuggestionStore.open(ws.ensure()))
        except (OSError, sqlite3.Error) as exc:  # the cache only saves time
            Console(stderr=True).print(f"No cache ({exc}); running without one.", markup=False)
        bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True, disable=quiet))
        task = bar.add_task(f"{source.kind} {source.name}", total=len(items))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = suggest(items, source, store, batch_size, progress)
        if store is not None:
            _remember(store, source, result, {i.rel: i.path for i in items if i.rel in result.tags})
        return result
    raise AssertionError("unreachable")  # pragma: no cover - mypy cannot see that ExitStack re-raises


def _remember(store: Any, source: Source, result: Suggestions, paths: dict[str, Path]) -> None:
    """Keep what was suggested (the TUI shows it) and which model ran (the report names it)."""
    from curator.captions.store import file_key

    rows = [(rel, file_key(path), ", ".join(result.tags[rel])) for rel, path in paths.items()]
    store.put_suggestions(source.name, rows)
    store.add_run({**source.describe(), "model_key": result.model_key, "images": len(result.tags)})


def _audit(ds: Dataset, plan: CaptionPlan, trigger: str | None) -> CaptionAudit:
    """The caption audit of the training captions as they will be after the write."""
    from curator.captions.audit import AuditSettings, audit_captions, records_for_files
    from curator.captions.parse import CaptionFile, read_caption

    read = []
    for item in ds.train_items:
        line = plan.lines.get(item.rel)
        if line is None:
            read.append((item, read_caption(item.caption_path)))
        else:
            read.append((item, CaptionFile(item.caption_path, "ok" if line else "empty", line, line)))
    return audit_captions(
        records_for_files(read), AuditSettings(trigger=trigger, max_token_length=TOKEN_LIMIT)
    )


def _report(
    ds: Dataset,
    items: list[Item],
    source: Source,
    result: Suggestions,
    ws: Workspace,
    mode: str,
    trigger: str | None,
    do_apply: bool,
    json_out: str | None,
) -> None:
    from rich.console import Console

    from curator.captions.merge import plan_captions

    plan = plan_captions(items, result.tags, mode, ds.caption_extension, trigger)
    audit = _audit(ds, plan, trigger)
    journal = _apply(plan, ws, ds.root) if do_apply and plan.changes else None
    if json_out:
        data = _json(source, result, plan, audit, mode, journal)
        emit_text(json.dumps(data, indent=2) + "\n", json_out, "--json")
    if json_out == "-":
        return
    console = Console(highlight=False, soft_wrap=True)
    _print_changes(console, plan, do_apply)
    _print_audit(console, audit)
    for note in result.notes + plan.notes:
        console.print(note, markup=False)
    ran = f"{source.kind} {source.name}: {result.ran} image(s) run, {result.cached} from the cache"
    console.print(ran, markup=False)
    created = sum(c.created for c in plan.changes)
    count = f"{len(plan.changes)} caption(s) ({created} new file(s)), {len(plan.kept)} left as they are"
    if not plan.changes:
        console.print("No caption would change.")
    elif do_apply:
        console.print(f"Wrote {count}. Undo with: {_undo_command(ds.root, ws)}", markup=False)
    else:
        console.print(f"Would write {count}. Dry run: add --apply to write.", markup=False)


def _apply(plan: CaptionPlan, ws: Workspace, root: Path) -> str:
    from curator.captions.edit import EditConflict, apply_changes

    try:
        ws.ensure()
        return str(apply_changes(plan.changes, ws).path)
    except EditConflict as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(
            f"Could not write the captions: {exc} (run '{_undo_command(root, ws)}' to restore)"
        ) from exc


def _undo_command(root: Path, ws: Workspace) -> str:
    """The command line that undoes this apply (naming the workspace when it is not the default one)."""
    from curator.dataset.workspace import Workspace

    extra = "" if ws == Workspace.for_dataset(root) else f" --workspace {ws.root}"
    return f"dreamcurate caption {root} --undo{extra}"


def _print_changes(console: Console, plan: CaptionPlan, applied: bool) -> None:
    from rich.text import Text

    for change in plan.changes:
        old = change.old.decode("utf-8", "replace").splitlines()
        new = change.new.decode("utf-8").splitlines()
        head = Text(change.rel, style="bold")
        head.append("  new caption file" if change.created else "", style="green")
        console.print(head)
        if old and old[0].strip():
            console.print(Text(f"  - {old[0]}", style="red"))
        console.print(Text(f"  + {new[0] if new else ''}", style="green"))
    if not applied and plan.kept:
        console.print(f"{len(plan.kept)} image(s) keep their caption (mode or nothing new).", style="dim")


def _print_audit(console: Console, audit: CaptionAudit) -> None:
    from rich.text import Text

    over = [r for r in audit.records if r.caption and r.tokens > TOKEN_LIMIT]
    counted = [r for r in audit.records if r.caption and r.tokens >= 0]
    console.print(
        f"After the write: {len(over)} of {len(counted)} caption(s) would be truncated at {TOKEN_LIMIT} "
        "CLIP tokens.",
        style="yellow" if over else "green",
    )
    for concept in audit.concepts.values():
        advice = concept.keep_tokens
        line = f"{concept.name}: keep_tokens {advice.n} ({advice.reason}); trigger '{concept.trigger}'"
        console.print(line, markup=False)
    for finding in audit.findings:
        if finding.code in SHOWN_CODES:
            where = f" {finding.path}" if finding.path else ""
            console.print(Text(f"  {finding.code}{where}: {finding.message}", style="yellow"))


def _json(
    source: Source,
    result: Suggestions,
    plan: CaptionPlan,
    audit: CaptionAudit,
    mode: str,
    journal: str | None,
) -> dict[str, Any]:
    over = [r.item.rel for r in audit.records if r.caption and r.tokens > TOKEN_LIMIT]
    return {
        "schema": "dreamcurate.caption/1",
        "model": {**source.describe(), "model_key": result.model_key},
        "mode": mode,
        "applied": journal is not None,
        "journal": journal,
        "ran": result.ran,
        "cached": result.cached,
        "suggested": {rel: tags for rel, tags in result.tags.items()},
        "changes": [
            {
                "path": c.rel,
                "caption": str(c.path),
                "created": c.created,
                "old": c.old.decode("utf-8", "replace"),
                "new": c.new.decode("utf-8"),
            }
            for c in plan.changes
        ],
        "kept": plan.kept,
        "skipped": result.notes + plan.notes,
        "audit": {
            "token_limit": TOKEN_LIMIT,
            "truncated": over,
            "keep_tokens": {name: c.keep_tokens.to_json() for name, c in audit.concepts.items()},
            "findings": [f.to_json() for f in audit.findings if f.code in SHOWN_CODES],
        },
    }
