"""``dreamcurate train CONFIG`` (and ``python -m trainer CONFIG``, which works under ``accelerate launch``).

Every TrainConfig field is also an option (``--max-train-steps 500``) that overrides the TOML for this run; the help
lists each field with its default. ``--init`` writes a config with every default (plus the options given) instead.
Importing this module is light: torch is imported when training starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from curator.settings.config import ConfigError, TrainConfig, read_config, write_config

EXTRACT_HELP = (
    "after a DreamBooth run, also write OUTPUT_NAME-lora.safetensors: a LoRA of rank DIM extracted from the result "
    "(see dreamcurate lora extract) [default: 0 = no]"
)


def _option_for(spec: dataclasses.Field) -> Any:
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc,operator]
    flag = "--" + spec.name.replace("_", "-")
    help_text = f"{spec.metadata['help']} [default: {default!r}]"
    if isinstance(default, bool):
        no_flag = "--no-" + spec.name.replace("_", "-")
        return click.option(f"{flag}/{no_flag}", spec.name, default=None, help=help_text)
    if isinstance(default, list):
        return click.option(flag, spec.name, multiple=True, help=help_text + " (repeat the option)")
    kind = {int: int, float: float, str: str}[type(default)]
    return click.option(flag, spec.name, type=kind, default=None, help=help_text)


def _with_field_options(command: Any) -> Any:
    for spec in reversed(dataclasses.fields(TrainConfig)):
        command = _option_for(spec)(command)
    return command


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The config with the options the user gave. ``--max-train-steps`` alone means "train this many steps": it
    clears max_train_epochs (which otherwise wins, as in Kohya)."""
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items() if v not in (None, ())}
    if "max_train_steps" in given and "max_train_epochs" not in given:
        given["max_train_epochs"] = 0
    return config.replace(**given)


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if v not in (None, ())}


def usage_error(exc: ConfigError, overrides: dict[str, Any]) -> click.UsageError:
    """A bad value given on the command line is a usage error (exit 2), naming the option when the message names
    its setting."""
    message = str(exc)
    flag = next(
        ("--" + name.replace("_", "-") for name in _given(overrides) if message.startswith(name)),
        None,
    )
    if flag is None:  # a message about several settings ("buckets need ...") or one not first in it
        flag = next(("--" + name.replace("_", "-") for name in _given(overrides) if name in message), None)
    if flag is None:
        return click.UsageError(message)
    return click.BadParameter(message, param_hint=f"'{flag}'")


def configured(config_path: Path, overrides: dict[str, Any], ignored: list[str] | None = None) -> TrainConfig:
    """CONFIG read and the options applied, every value checked: a problem the options bring in is a usage error
    (exit 2); a problem of the file's own stays a ClickException (exit 1) that names the file."""
    try:
        from_file = read_config(config_path, ignored)
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
        raise click.ClickException(str(exc)) from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="continue the newest saved state in output_dir")
@click.option(
    "--init", "init", is_flag=True, help="write CONFIG with every default (and the options given), then exit"
)
@click.option("--no-progress", is_flag=True, help="no progress bar (events.jsonl is written either way)")
@click.option("--extract-lora", type=click.IntRange(min=0), default=0, metavar="DIM", help=EXTRACT_HELP)
@_with_field_options
def train(
    config_path: Path, resume: bool, init: bool, no_progress: bool, extract_lora: int, **overrides: Any
) -> None:
    """Train a DreamBooth model from the TOML file CONFIG (Kohya sd-scripts setting names).

    Progress goes to OUTPUT_DIR/events.jsonl (JSON lines) as well as the terminal. Options override CONFIG.
    """
    if init:
        _init(config_path, overrides)
        return
    ignored: list[str] = []
    config = configured(config_path, overrides, ignored)
    if ignored:
        click.echo(
            f"notice: ignoring Kohya settings this trainer does not implement: {', '.join(ignored)}", err=True
        )
    _run(config, resume, not no_progress, extract_lora)


def _init(config_path: Path, overrides: dict[str, Any]) -> None:
    if config_path.exists():
        raise click.ClickException(f"{config_path} exists; --init does not overwrite a config")
    try:
        config = apply_overrides(TrainConfig(), overrides).validate(check_paths=False)
    except ConfigError as exc:  # every value came from the command line
        raise usage_error(exc, overrides) from exc
    write_config(config, config_path)
    click.echo(f"wrote {config_path}")


def _run(config: TrainConfig, resume: bool, progress: bool, extract_lora: int = 0) -> None:
    from trainer.data import DataError
    from trainer.loop import TrainingError
    from trainer.loop import train as run_training
    from trainer.models.errors import ModelError

    if extract_lora and config.network_module:
        raise click.UsageError(
            "--extract-lora extracts from a DreamBooth result; this config trains a LoRA already"
        )
    try:
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
