"""``dreamcurate export DATASET OUT``: scan (cached), the one curation (review decisions, then the policy), its plan
with the training settings, and the curated Kohya folder with its manifest, plan and configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.commands.options import context_options, dataset_options, policy_options
from curator.settings.options import PLAN_FIELDS, settings_file_option, training_options


def kohya_flags(report: Any) -> str:
    """The train_db.py arguments that train what the plan counted, beside ``--dataset_config`` (which carries the
    batch size and the buckets)."""
    s, plan = report.settings, report.plan or {}
    flags = [f"--dataset_config {report.out / 'dataset.toml'}"]
    if s.max_train_epochs:
        flags.append(f"--max_train_epochs {s.max_train_epochs}")
    else:
        flags.append(f"--max_train_steps {plan.get('total_steps', s.max_train_steps)}")
    stop = plan.get("stop_text_encoder_training")
    if stop is not None:
        flags.append(f"--stop_text_encoder_training {stop}")
    if s.gradient_accumulation_steps > 1:
        flags.append(f"--gradient_accumulation_steps {s.gradient_accumulation_steps}")
    if s.save_every_n_epochs:
        flags.append(f"--save_every_n_epochs {s.save_every_n_epochs}")
    flags.append(f"--seed {s.seed}")
    return " ".join(flags)


def print_export_summary(report: Any, suggested_note: bool) -> None:
    """A few lines: what was exported, what was dropped and why, balanced repeats, how to train it."""
    from rich.console import Console

    from curator.textsafe import markup, safe

    console = Console(highlight=False)
    console.print(
        f"[bold]Exported[/] {report.kept} images to {markup(report.out)} ({report.linked} hard links, "
        f"{report.copied} copies, {report.converted} upright PNG copies for Kohya)"
    )
    for folder in report.folders:
        console.print(f"  {safe(folder.rel)}: {folder.count} images x {folder.repeats} repeats", markup=False)
    left = report.curation.left_out_text() if report.curation is not None else ""
    if left:
        console.print(f"[bold]Left out[/] {markup(left)} (manifest.json says why, image by image)")
    if report.kept_entries:
        shown = ", ".join(report.kept_entries[:5]) + (" ..." if len(report.kept_entries) > 5 else "")
        console.print(f"Kept in {safe(report.out)} (not written by export): {safe(shown)}", markup=False)
    plan = report.plan or {}
    if plan:
        stop = plan.get("stop_text_encoder_training")
        console.print(
            f"[bold]Plan[/] {plan.get('total_steps')} optimizer steps ({plan.get('steps_per_epoch')} per epoch), "
            f"text encoder {'to the end' if stop is None else f'stops at step {stop}'} (plan.json)"
        )
    current = {f.name: f.repeats for f in report.folders if not f.is_reg}
    if suggested_note and report.suggested_repeats and report.suggested_repeats != current:
        parts = ", ".join(f"{name} {r}" for name, r in report.suggested_repeats.items())
        console.print(
            f"Repeats that balance the concepts: {safe(parts)} (use --balance to apply them)", markup=False
        )
    console.print("ours:  dreamcurate train " + safe(report.out / "train.toml"), markup=False)
    console.print("Kohya: train_db.py " + safe(kohya_flags(report)), markup=False)


@click.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@dataset_options
@policy_options
@training_options(PLAN_FIELDS, shorthands=True)
@settings_file_option
@context_options
@click.option("--force", is_flag=True, help="Replace an existing OUT (only an earlier export).")
@click.option("--copy", "copy_files", is_flag=True, help="Copy images instead of hard-linking them.")
@click.option("--base", "base_model", default="", help="Base model written to train.toml.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def export(dataset: Path, out: Path, **kw: Any) -> None:
    """Write the curated Kohya folder OUT/img/<repeats>_<name>/, manifest.json, plan.json, dataset.toml and
    train.toml.

    Review decisions from the workspace come first; then errors are dropped, warnings kept (--drop CODE drops the
    warnings of a code, --strict all of them), and duplicate clusters keep their keeper. The training options go
    into both configs; the plan is of exactly what is exported. The dataset itself is never changed.
    """
    from curator.commands.options import curate, plan_options, policy_from, scan_dataset, scan_settings
    from curator.export.folder import ExportError, ExportOptions, export_dataset
    from curator.review.curation import plan_curation
    from curator.settings.options import base_settings, settings_from_options

    settings = settings_from_options(kw, base_settings(kw["config_file"], kw["base_model"]))
    options = plan_options(kw, settings, kw["base_model"])
    policy = policy_from(kw)
    result = scan_dataset(dataset, scan_settings(kw, settings))
    curation = curate(result, policy)
    plan = plan_curation(curation, options).to_json() if curation.kept_count else None
    export_options = ExportOptions(
        force=kw["force"],
        hardlink=not kw["copy_files"],
        base_model=kw["base_model"],
        settings=settings,
        progress=not kw["no_progress"],
    )
    try:
        report = export_dataset(curation, out, export_options, plan)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"export failed, nothing was written to {out}: {exc}") from exc
    print_export_summary(report, suggested_note=not policy.balance)
