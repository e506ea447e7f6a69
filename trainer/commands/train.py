"""``dreamcurate train CONFIG`` (and ``python -m trainer CONFIG``, which works under ``accelerate launch``).

Every TrainConfig field is also an option (``--max-train-steps 500``) that overrides the TOML for this run; the help
lists each field with its default. ``--init`` writes a config with every default (plus the options given) instead.
Importing this module is light: torch is imported when training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.settings.config import ConfigError, TrainConfig, read_config, write_config
from curator.settings.options import apply_overrides, given, training_options, usage_error

EXTRACT_HELP = (
    "after a DreamBooth run, also write OUTPUT_NAME-lora.safetensors: a LoRA of rank DIM extracted from the result "
    "(see dreamcurate lora extract) [default: 0 = no]"
)


def _with_field_options(command: Any) -> Any:
    return training_options()(command)


def configured(
    config_path: Path,
    overrides: dict[str, Any],
    ignored: list[str] | None = None,
    skip_unsupported: bool = False,
) -> TrainConfig:
    """CONFIG read and the options applied, every value checked: a problem the options bring in is a usage error
    (exit 2); a problem of the file's own stays a ClickException (exit 1) that names the file."""
    try:
        from_file = read_config(config_path, ignored, skip_unsupported)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    file_problem = ""
    try:
        from_file.validate(check_paths=False)
    except ConfigError as exc:
        file_problem = str(exc)
    try:
        config = apply_overrides(from_file, overrides).validate(check_paths=False)
    except ConfigError as exc:
        if str(exc) != file_problem:  # the options brought it in (the file alone is fine, or fails otherwise)
            raise usage_error(exc, overrides) from exc
        raise click.ClickException(f"{config_path}: {exc}") from exc
    try:
        return config.validate()  # paths, and packages the settings need
    except ConfigError as exc:
        if any(str(exc).startswith(name) for name in given(overrides)):  # a path given as an option
            raise usage_error(exc, overrides) from exc
        raise click.ClickException(str(exc)) from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="continue the newest saved state in output_dir")
@click.option(
    "--fresh",
    is_flag=True,
    help="start over in an output_dir that holds an earlier run (its state and checkpoints are replaced)",
)
@click.option(
    "--init", "init", is_flag=True, help="write CONFIG with every default (and the options given), then exit"
)
@click.option("--no-progress", is_flag=True, help="no progress bar (events.jsonl is written either way)")
@click.option(
    "--skip-unsupported",
    is_flag=True,
    help="train without the Kohya settings this trainer does not implement (named in a notice) instead of stopping",
)
@click.option("--extract-lora", type=click.IntRange(min=0), default=0, metavar="DIM", help=EXTRACT_HELP)
@_with_field_options
def train(
    config_path: Path,
    resume: bool,
    fresh: bool,
    init: bool,
    no_progress: bool,
    skip_unsupported: bool,
    extract_lora: int,
    **overrides: Any,
) -> None:
    """Train a DreamBooth model from the TOML file CONFIG (Kohya sd-scripts setting names).

    Progress goes to OUTPUT_DIR/events.jsonl (JSON lines) as well as the terminal. Options override CONFIG.
    """
    if init:
        _init(config_path, overrides)
        return
    ignored: list[str] = []
    config = configured(config_path, overrides, ignored, skip_unsupported)
    if ignored:
        click.echo(
            f"notice: training without Kohya settings this trainer does not implement: {', '.join(ignored)}",
            err=True,
        )
    if resume and fresh:
        raise click.UsageError("--resume and --fresh cannot be combined")
    _run(config, resume, not no_progress, fresh, extract_lora)


def _init(config_path: Path, overrides: dict[str, Any]) -> None:
    if config_path.exists():
        raise click.ClickException(f"{config_path} exists; --init does not overwrite a config")
    try:
        config = apply_overrides(TrainConfig(), overrides).validate(check_paths=False)
    except ConfigError as exc:  # every value came from the command line
        raise usage_error(exc, overrides) from exc
    write_config(config, config_path)
    click.echo(f"wrote {config_path}")


def _run(
    config: TrainConfig, resume: bool, progress: bool, fresh: bool = False, extract_lora: int = 0
) -> None:
    from trainer import checkpoint

    # The first line comes before torch is imported (seconds on a busy machine)
    click.echo(f"training into {config.output_dir} (loading torch)", err=True)
    from trainer.data import DataError
    from trainer.loop import TrainingError
    from trainer.loop import train as run_training
    from trainer.models.errors import ModelError

    if extract_lora and config.network_module:
        raise click.UsageError(
            "--extract-lora extracts from a DreamBooth result; this config trains a LoRA already"
        )
    try:
        checkpoint.check_fresh_start(config, resume, fresh)
        result = run_training(config, resume=resume, show_progress=progress)
    except (ConfigError, DataError, TrainingError, ModelError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.main_process:  # one summary for a multi-process run
        return
    click.echo(f"trained {result.steps} steps; model: {result.final_path}")
    if result.samples:
        click.echo(f"samples: {result.samples[-1].parent}")
    if extract_lora and result.final_path is not None:
        _extract_after(config, result.final_path, extract_lora)


def _extract_after(config: TrainConfig, final: Path, dim: int) -> None:
    """The LoRA of the finished DreamBooth run (``OUTPUT_NAME-lora.safetensors`` beside it)."""
    from trainer.commands.lora import print_extraction
    from trainer.lora.extract import extract_file
    from trainer.models.errors import ModelError

    out = Path(config.output_dir) / f"{config.output_name}-lora.safetensors"
    base = Path(config.pretrained_model_name_or_path)
    try:
        result = extract_file(base, final, out, dim, precision=config.save_precision, force=True)
    except ModelError as exc:
        raise click.ClickException(f"--extract-lora: {exc}") from exc
    print_extraction(result, out, show_layers=False)
