"""``dreamcurate review DATASET``: the click command that starts the Textual app.

Textual and textual-image are imported inside the command only, so ``dreamcurate --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.commands.options import dataset_options, policy_options
from curator.dataset.discover import check_reg_root
from curator.scan.results import ScanSettings
from curator.settings.config import TrainConfig
from curator.settings.options import PLAN_FIELDS, settings_file_option, training_options


def build_settings(kw: dict[str, Any], training: TrainConfig) -> ScanSettings:
    """Scan settings from the command's options: the training settings' resolution and buckets, the dataset's."""
    from curator.commands.options import scan_settings

    settings = scan_settings(kw, training)
    settings.progress = False  # the app shows its own progress bar
    if kw.get("workers"):
        settings.workers = kw["workers"]
    return settings


@click.command("review")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@dataset_options
@policy_options
@training_options((*PLAN_FIELDS, "max_token_length"), shorthands=True)
@settings_file_option
@click.option(
    "--workers", type=click.IntRange(1, 256), default=None, help="Scan processes (default: CPU count)."
)
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default folder for Export (default DATASET-curated).",
)
def review(dataset: Path, **kw: Any) -> None:
    """Review DATASET in the terminal: browse findings, keep / drop images, edit captions, tune the plan, export
    and train. Decisions are saved in the workspace as you make them; press ? in the app for every key.

    The curation policy and training options are those of plan and export: the Plan tab starts from them."""
    from curator.commands.options import policy_from
    from curator.settings.options import base_settings, settings_from_options

    training = settings_from_options(kw, base_settings(kw["config_file"]))
    policy = policy_from(kw)
    settings = build_settings(kw, training)
    try:  # a bad setting is a usage error now, not a failure inside the app's scan worker later
        settings.validate()
        check_reg_root(dataset, kw["reg_root"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # textual-image must query the terminal before Textual takes it over, so import it first.
    from tui.widgets.preview.image import prepare_terminal

    prepare_terminal()
    from tui.app import create_app

    create_app(dataset, settings, training=training, policy=policy, export_dir=kw["export_dir"]).run()
