"""``dreamcurate review DATASET``: the click command that starts the Textual app.

Textual and textual-image are imported inside the command only, so ``dreamcurate --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import click

from curator.dataset.discover import check_reg_root
from curator.scan.results import ScanSettings


def build_settings(
    workspace: Path | None,
    reg: Path | None,
    resolution: int,
    caption_extension: str | None,
    max_token_length: int,
    workers: int | None,
) -> ScanSettings:
    """Scan settings from the command's options (everything else keeps its default)."""
    settings = ScanSettings(
        resolution=resolution,
        caption_extension=caption_extension,
        max_token_length=max_token_length,
        workspace=workspace,
        reg_root=reg,
        progress=False,  # the app shows its own progress bar
    )
    if workers:
        settings.workers = workers
    return settings


@click.command("review")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder (default DATASET/.dreamcurate).",
)
@click.option(
    "--reg",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Regularization image folder.",
)
@click.option(
    "--resolution", type=click.IntRange(64, 4096), default=512, show_default=True, help="Training resolution."
)
@click.option(
    "--caption-extension",
    type=click.Choice([".txt", ".caption"]),
    default=None,
    help="Caption extension (default: detect).",
)
@click.option(
    "--max-token-length",
    type=click.Choice(["75", "150", "225"]),
    default="75",
    show_default=True,
    help="CLIP tokens read per caption.",
)
@click.option(
    "--workers", type=click.IntRange(1, 256), default=None, help="Scan processes (default: CPU count)."
)
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default folder for Export (default DATASET-curated).",
)
def review(
    dataset: Path,
    workspace: Path | None,
    reg: Path | None,
    resolution: int,
    caption_extension: str | None,
    max_token_length: str,
    workers: int | None,
    export_dir: Path | None,
) -> None:
    """Review DATASET in the terminal: browse findings, keep / drop images, edit captions, tune the plan, export
    and train. Decisions are saved in the workspace as you make them; press ? in the app for every key."""
    settings = build_settings(workspace, reg, resolution, caption_extension, int(max_token_length), workers)
    try:  # a bad setting is a usage error now, not a failure inside the app's scan worker later
        settings.validate()
        check_reg_root(dataset, reg)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # textual-image must query the terminal before Textual takes it over, so import it first.
    from tui.widgets.preview.image import prepare_terminal

    prepare_terminal()
    from tui.app import create_app

    create_app(dataset, settings, export_dir=export_dir).run()
