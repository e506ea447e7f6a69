"""``dreamcurate tags DATASET``: the caption audit, and safe batch edits of tags (dry run unless ``--apply``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from curator.commands.output import ReportGuard, emit_text, guard_targets
from curator.textsafe import markup, safe, safe_block

if TYPE_CHECKING:
    from curator.captions.edit import TagEdits
    from curator.dataset.discover import Dataset, Item
    from curator.dataset.workspace import Workspace


def _replace_pair(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise click.BadParameter(f"expected OLD=NEW, got {value!r}", ctx, param)
        pairs.append((old.strip(), new.strip()))
    return tuple(pairs)


@click.command("tags")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--reg",
    "reg_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Regularization folder.",
)
@click.option(
    "--caption-extension", help="Caption extension training reads (default .txt; Kohya's is .caption)."
)
@click.option("--trigger", help="Trigger word expected first in captions (default: the concept name).")
@click.option("--max-token-length", type=click.Choice(["75", "150", "225"]), default="75", show_default=True)
@click.option(
    "--keep-tokens",
    type=click.IntRange(0, 64),
    help="The keep_tokens you train with (default: check the advice).",
)
@click.option(
    "--top", type=click.IntRange(1, 1000), default=20, show_default=True, help="Tags shown per concept."
)
@click.option(
    "--json", "json_out", metavar="FILE", help="Write the audit (or the edit plan) as JSON ('-' = stdout)."
)
@click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help="Workspace folder (journals)."
)
@click.option("--dedupe", is_flag=True, help="Edit: drop repeated tags (first kept).")
@click.option(
    "--move-to-front", "move_to_front", multiple=True, metavar="TAG", help="Edit: move TAG to the front."
)
@click.option("--add-trigger", metavar="WORD", help="Edit: put WORD first in captions that lack it.")
@click.option(
    "--replace", multiple=True, metavar="OLD=NEW", callback=_replace_pair, help="Edit: rename a tag."
)
@click.option("--remove", multiple=True, metavar="TAG", help="Edit: drop a tag.")
@click.option("--concept", "concepts", multiple=True, metavar="NAME", help="Edit only these concepts.")
@click.option("--apply", "do_apply", is_flag=True, help="Write the edits (atomic, with an undo journal).")
@click.option("--undo", is_flag=True, help="Restore the captions of the last --apply.")
@click.option(
    "--force",
    is_flag=True,
    help="With --undo: restore captions edited since the apply as well; with --json: overwrite a file that is "
    "not a dreamcurate report.",
)
def tags(
    dataset: Path,
    reg_root: Path | None,
    caption_extension: str | None,
    trigger: str | None,
    max_token_length: str,
    keep_tokens: int | None,
    top: int,
    json_out: str | None,
    workspace: Path | None,
    dedupe: bool,
    move_to_front: tuple[str, ...],
    add_trigger: str | None,
    replace: tuple[tuple[str, str], ...],
    remove: tuple[str, ...],
    concepts: tuple[str, ...],
    do_apply: bool,
    undo: bool,
    force: bool,
) -> None:
    """Audit the captions of DATASET: tag frequency per concept, keep_tokens advice, CLIP token lengths, findings.

    With an edit option (--dedupe, --move-to-front, --add-trigger, --replace, --remove) it shows the diff it would
    apply; add --apply to write it (atomically, with an undo journal in the workspace); --undo restores the last
    apply. Nothing else ever writes a caption file; images are never touched.
    """
    from curator.captions.edit import TagEdits
    from curator.dataset.workspace import Workspace

    if not dataset.is_dir():
        raise click.UsageError(
            f"Dataset folder {'is not a folder' if dataset.exists() else 'does not exist'}: {dataset}"
        )
    guard_targets({"--json": json_out}, ReportGuard(dataset, reg_root, workspace, force))
    ws = Workspace.for_dataset(dataset, workspace)
    if undo:
        if do_apply:
            raise click.UsageError("--undo and --apply cannot be combined")
        _undo(ws, force)
        return
    try:
        edits = TagEdits(
            replace=replace,
            remove=tuple(remove),
            dedupe=dedupe,
            add_trigger=add_trigger,
            move_to_front=move_to_front,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    ds = _discover(dataset, reg_root, caption_extension)
    if edits.is_empty():
        if do_apply:
            raise click.UsageError(
                "--apply needs an edit option (--dedupe, --move-to-front, --add-trigger, ...)"
            )
        _audit(ds, ws, trigger, int(max_token_length), keep_tokens, top, json_out)
        return
    known = {c.name for c in ds.concepts}
    unknown = [name for name in concepts if name not in known]
    if unknown:
        raise click.UsageError(f"unknown concept(s): {', '.join(unknown)} (have: {', '.join(sorted(known))})")
    items = [i for i in ds.items if not concepts or i.concept in concepts]
    _edit(ds, items, edits, ws, do_apply, json_out)


def _discover(dataset: Path, reg_root: Path | None, caption_extension: str | None) -> Dataset:
    from curator.dataset.discover import discover

    try:
        return discover(dataset, reg_root=reg_root, caption_extension=caption_extension)
    except NotADirectoryError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # options that contradict each other (--reg holding the dataset)
        raise click.UsageError(str(exc)) from exc


def _emit_json(data: dict, target: str) -> None:
    emit_text(json.dumps(data, indent=2) + "\n", target, "--json")


def _audit(
    ds: Dataset,
    ws: Workspace,
    trigger: str | None,
    max_tokens: int,
    keep_tokens: int | None,
    top: int,
    json_out: str | None,
) -> None:
    from rich.console import Console

    from curator.captions.audit import AuditSettings, audit_captions, load_workspace_captions
    from curator.captions.view import print_audit

    settings = AuditSettings(trigger=trigger, max_token_length=max_tokens, keep_tokens=keep_tokens)
    audit = audit_captions(load_workspace_captions(ds.items, ws), settings)
    if json_out:
        data = audit.to_json()
        data["findings"] = [f.to_json() for f in ds.findings if f.code.startswith("caption")] + data[
            "findings"
        ]
        _emit_json(data, json_out)
    if json_out != "-":
        console = Console()
        for f in ds.findings:
            if f.code.startswith("caption"):
                console.print(f"[yellow]{f.code}[/]: {markup(f.message)}")
        print_audit(audit, console, top)


def _edit(
    ds: Dataset, items: list[Item], edits: TagEdits, ws: Workspace, do_apply: bool, json_out: str | None
) -> None:
    from rich.console import Console

    from curator.captions.edit import EditConflict, apply_changes, plan_changes, render_diff
    from curator.dataset.workspace import WorkspaceBusy

    changes, notes = plan_changes(items, edits)
    quiet = json_out == "-"
    console = Console(stderr=quiet, highlight=False)
    journal_path = None
    if do_apply and changes:
        try:
            ws.ensure()
        except OSError as exc:  # nothing was written yet: say so rather than suggest an undo
            raise click.ClickException(f"{exc}; no caption was changed") from exc
        try:
            journal = apply_changes(changes, ws)
        except EditConflict as exc:
            raise click.ClickException(safe(exc)) from exc
        except WorkspaceBusy as exc:
            raise click.ClickException(f"{safe(exc)}; no caption was changed") from exc
        except OSError as exc:
            raise click.ClickException(
                f"Could not write the captions: {exc} (run 'tags --undo' to restore)"
            ) from exc
        journal_path = str(journal.path)
    if json_out:
        _emit_json(
            {
                "schema": "dreamcurate.tagedit/1",
                "applied": bool(do_apply and changes),
                "journal": journal_path,
                "changes": [
                    {
                        "path": c.rel,
                        "caption": str(c.path),
                        "old": c.old.decode("utf-8"),
                        "new": c.new.decode("utf-8"),
                    }
                    for c in changes
                ],
                "skipped": notes,
            },
            json_out,
        )
    if quiet:
        return
    if not do_apply and changes:
        console.print(safe_block(render_diff(changes)), markup=False)
    for note in notes:
        console.print(safe(note), markup=False)
    if not changes:
        console.print("No caption would change.")
    elif do_apply:
        console.print(
            f"Changed {len(changes)} caption(s). Undo with: dreamcurate tags {safe(ds.root)} --undo",
            markup=False,
        )
    else:
        console.print(f"{len(changes)} caption(s) would change. Dry run: add --apply to write.")


def _undo(ws: Workspace, force: bool) -> None:
    from curator.captions.edit import undo_last

    try:
        result = undo_last(ws, force=force)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Could not undo: {safe(exc)}") from exc
    if result.journal is None:
        raise click.ClickException("Nothing to undo: no applied tag edits in this workspace")
    click.echo(f"Restored {len(result.restored)} caption(s) from {safe(result.journal.name)}.")
    if result.unchanged:
        click.echo(f"{len(result.unchanged)} caption(s) already held their old text.")
    if result.conflicts:
        shown = ", ".join(result.conflicts[:5])
        raise click.ClickException(
            f"{len(result.conflicts)} caption(s) changed since the apply and were left alone ({shown}); "
            "--undo --force restores them anyway"
        )
