"""``dreamcurate export DATASET OUT``: scan (cached), apply review decisions and the policy, write the curated
Kohya folder with its manifest and configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.scan.results import ScanResult, ScanSettings


def run_scan(
    dataset: Path,
    reg: Path | None,
    workspace: Path | None,
    resolution: int | None,
    buckets: tuple[int, int, int, bool] | None = None,
) -> ScanResult:
    """Scan ``dataset`` with the cache (only changed files are analysed again); ``buckets`` is (min reso, max reso,
    steps, no_upscale) as training will use them."""
    from curator.scan.run import scan

    settings = ScanSettings(reg_root=reg, workspace=workspace)
    if resolution:
        settings.resolution = resolution
    if buckets:
        (
            settings.min_bucket_reso,
            settings.max_bucket_reso,
            settings.bucket_reso_steps,
            settings.bucket_no_upscale,
        ) = buckets
    try:
        return scan(dataset, settings)
    except ValueError as exc:  # a bad --resolution or bucket setting
        raise click.UsageError(str(exc)) from exc


def _family_scan_settings(
    base_model: str, resolution: int | None
) -> tuple[int | None, tuple[int, int, int, bool] | None]:
    """An SDXL base scans (too_small, buckets) at SDXL's resolution and buckets, unless --resolution is given."""
    from curator.export.folder import base_family
    from curator.settings.config import TrainConfig

    if base_family(base_model) != "sdxl":
        return resolution, None
    d = TrainConfig.for_family("sdxl")
    return resolution or d.resolution, (d.min_bucket_reso, d.max_bucket_reso, d.bucket_reso_steps, False)


def print_export_summary(report: Any, suggested_note: bool) -> None:
    """A few lines: what was exported, what was dropped and why, balanced repeats."""
    from rich.console import Console

    from curator.review.selection import summarize

    console = Console(highlight=False)
    console.print(
        f"[bold]Exported[/] {report.kept} images to {report.out} ({report.linked} hard links, {report.copied} copies)"
    )
    for folder in report.folders:
        console.print(f"  {folder.rel}: {folder.count} images x {folder.repeats} repeats")
    rules = summarize(v for v in report.verdicts.values() if not v.kept)
    if rules:
        words = {
            "duplicate": "duplicates (the keeper stays)",
            "error": "with error findings",
            "warning": "with warnings (--strict)",
            "subset": "outside the diverse subset",
            "review": "dropped in review",
            "unreadable": "unreadable",
        }
        parts = ", ".join(f"{n} {words.get(rule, rule)}" for rule, n in sorted(rules.items()))
        console.print(f"[bold]Left out[/] {parts} (manifest.json says why, image by image)")
    current = {f.name: f.repeats for f in report.folders if not f.is_reg}
    if suggested_note and report.suggested_repeats and report.suggested_repeats != current:
        parts = ", ".join(f"{name} {r}" for name, r in report.suggested_repeats.items())
        console.print(f"Repeats that balance the concepts: {parts} (use --balance to apply them)")
    console.print(
        "Kohya: --dataset_config "
        + str(report.out / "dataset.toml")
        + "   ours: dreamcurate train "
        + str(report.out / "train.toml")
    )


@click.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--reg",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Regularization folder (Kohya layout).",
)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder (default DATASET/.dreamcurate).",
)
@click.option(
    "--strict", is_flag=True, help="Drop items with warnings too (default: drop errors, keep warnings)."
)
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
@click.option(
    "--target-size",
    type=click.IntRange(min=1),
    help="Per concept: keep at most N images, the N that cover the set best.",
)
@click.option("--balance", is_flag=True, help="Use repeats that balance the concepts in the folder names.")
@click.option("--copy", "copy_files", is_flag=True, help="Copy images instead of hard-linking them.")
@click.option("--base", "base_model", default="", help="Base model written to train.toml.")
@click.option(
    "--resolution", type=click.IntRange(min=64), help="Training resolution (default 512; SDXL base: 1024)."
)
def export(
    dataset: Path,
    out: Path,
    reg: Path | None,
    workspace: Path | None,
    strict: bool,
    force: bool,
    target_size: int | None,
    balance: bool,
    copy_files: bool,
    base_model: str,
    resolution: int | None,
) -> None:
    """Write the curated Kohya folder OUT/img/<repeats>_<name>/, manifest.json, dataset.toml and train.toml.

    Review decisions from the workspace come first; then errors are dropped, warnings kept (--strict drops them),
    and duplicate clusters keep their keeper. The dataset itself is never changed.
    """
    from curator.dataset.workspace import Workspace
    from curator.export.folder import ExportError, ExportOptions, export_dataset, plan_verdicts
    from curator.plan.handoff import PlanInputs, plan_json
    from curator.review.decisions import DecisionStore

    resolution, buckets = _family_scan_settings(base_model, resolution)
    result = run_scan(dataset, reg, workspace, resolution, buckets)
    options = ExportOptions(
        strict=strict,
        force=force,
        target_size=target_size,
        balance=balance,
        hardlink=not copy_files,
        base_model=base_model,
    )
    store = DecisionStore(Workspace.for_dataset(dataset, workspace))
    verdicts, _ = plan_verdicts(result, store, options)
    kept = {rel for rel, v in verdicts.items() if v.kept}
    options.plan = plan_json(result, kept, PlanInputs(resolution=resolution, base_model=base_model))
    try:
        report = export_dataset(result, out, options, store)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"export failed, nothing was written to {out}: {exc}") from exc
    print_export_summary(report, suggested_note=not balance)
