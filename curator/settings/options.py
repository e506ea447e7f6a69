"""Command-line options made from the settings, shared by every command that takes them (``plan``, ``export``,
``run``, ``train``): each TrainConfig field is one option under its Kohya name (``--train-batch-size``), with a short
alias where the curator's commands always had one (``--batch``), its one default and its one help line.

Example::

    @click.command()
    @training_options(PLAN_FIELDS)
    def plan(**kw):
        settings = settings_from_options(TrainConfig(), kw)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from curator.settings.config import ConfigError, TrainConfig, field_kind

#: TrainConfig fields that ``plan``, ``export`` and ``run`` take as options: everything the plan depends on
PLAN_FIELDS = (
    "resolution",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "max_train_epochs",
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "text_encoder_sensitivity",
    "stop_text_encoder_training",
    "save_every_n_epochs",
    "save_precision",
    "mixed_precision",
    "gradient_checkpointing",
    "optimizer_type",
    "train_text_encoder",
    "cache_text_encoder_outputs",
    "fused_backward_pass",
    "full_bf16",
    "keep_tokens",
    "network_module",
    "network_dim",
    "conv_dim",
    "validation_split",
    "seed",
)

#: Short names the curator's commands have always taken, beside the Kohya name
ALIASES = {
    "train_batch_size": "--batch",
    "max_train_epochs": "--epochs",
    "max_train_steps": "--steps",
    "gradient_accumulation_steps": "--grad-accum",
    "save_every_n_epochs": "--save-every",
    "text_encoder_sensitivity": "--te-sensitivity",
    "stop_text_encoder_training": "--te-stop",
    "min_bucket_reso": "--bucket-min",
    "max_bucket_reso": "--bucket-max",
    "bucket_reso_steps": "--bucket-steps",
}

#: Flags that set one value of a setting: flag -> (field, value)
SHORTHAND_FLAGS = {
    "no_te": ("--no-te", "stop_text_encoder_training", -1, "never train the text encoder"),
    "no_buckets": ("--no-buckets", "enable_bucket", False, "no buckets: crop every image to a square"),
    "no_upscale": ("--no-upscale", "bucket_no_upscale", True, "bucket_no_upscale: never enlarge images"),
    "use_8bit_adam": ("--8bit-adam", "optimizer_type", "AdamW8bit", "8-bit AdamW (bitsandbytes)"),
}


def field_default(spec: dataclasses.Field) -> Any:
    """A settings field's default value."""
    return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc,operator]


def option_for(spec: dataclasses.Field, alias: str | None = None) -> Callable[[Any], Any]:
    """The click option of one TrainConfig field: ``--kohya-name`` (and ``alias``), None unless given."""
    default = field_default(spec)
    flag = "--" + spec.name.replace("_", "-")
    help_text = f"{spec.metadata['help']} [default: {default!r}]"
    names = [flag] + ([alias] if alias else [])
    if isinstance(default, bool):
        return click.option(
            f"{flag}/--no-{spec.name.replace('_', '-')}", spec.name, default=None, help=help_text
        )
    if isinstance(default, list):
        return click.option(*names, spec.name, multiple=True, help=help_text + " (repeat the option)")
    kind = {int: int, float: float, str: str}[field_kind(spec)]
    return click.option(*names, spec.name, type=kind, default=None, help=help_text)


def training_options(names: Iterable[str] | None = None, shorthands: bool = False) -> Callable[[Any], Any]:
    """A decorator adding the options of these TrainConfig fields (all of them when None); ``shorthands`` adds the
    curator's one-value flags (``--no-te``, ``--no-buckets``, ``--no-upscale``, ``--8bit-adam``)."""
    specs = {f.name: f for f in dataclasses.fields(TrainConfig)}
    chosen = list(names) if names is not None else list(specs)

    def decorate(command: Any) -> Any:
        if shorthands:
            for key, (flag, _field, _value, help_text) in reversed(SHORTHAND_FLAGS.items()):
                command = click.option(flag, key, is_flag=True, default=False, help=help_text)(command)
        for name in reversed(chosen):
            command = option_for(specs[name], ALIASES.get(name))(command)
        return command

    return decorate


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields among ``options`` that the user gave (click leaves the others None or ())."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in options.items() if k in names and v not in (None, ())}


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The config with the options the user gave. ``--max-train-steps`` alone means "train this many steps": it
    clears max_train_epochs (which otherwise wins, as in Kohya). Shorthand flags set their field."""
    values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in given(overrides).items()}
    for key, (_flag, name, value, _help) in SHORTHAND_FLAGS.items():
        if overrides.get(key):
            values[name] = value
    if "max_train_steps" in values and "max_train_epochs" not in values:
        values["max_train_epochs"] = 0
    return config.replace(**values)


def usage_error(exc: ConfigError, overrides: dict[str, Any]) -> click.UsageError:
    """A bad value given on the command line is a usage error (exit 2), naming the option when the message names
    its setting."""
    message = str(exc)
    names = list(given(overrides))
    flag = next(("--" + n.replace("_", "-") for n in names if message.startswith(n)), None)
    if flag is None:  # a message about several settings ("buckets need ...") or one not first in it
        flag = next(("--" + n.replace("_", "-") for n in names if n in message), None)
    if flag is None:
        return click.UsageError(message)
    return click.BadParameter(message, param_hint=f"'{flag}'")


def settings_from_options(options: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """The settings a command runs with: ``base`` (the defaults, or a config file's) with the options given; every
    value checked, a bad one a usage error naming its option. Paths are not checked here."""
    chosen = given(options)
    for first, second in (
        ("max_train_epochs", "max_train_steps"),
        ("text_encoder_sensitivity", "stop_text_encoder_training"),
    ):
        if chosen.get(first) and chosen.get(second):
            raise click.UsageError(
                f"give --{first.replace('_', '-')} or --{second.replace('_', '-')}, not both "
                f"({'epochs win over steps' if first == 'max_train_epochs' else 'an explicit stop step wins'} in Kohya)"
            )
    try:
        return apply_overrides(base or TrainConfig(), options).validate(check_paths=False)
    except ConfigError as exc:
        raise usage_error(exc, options) from exc


def settings_file_option(command: Any) -> Any:
    """``--config FILE``: start from a train.toml (ours or Kohya's) instead of the defaults."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Start from this train.toml (Kohya setting names) instead of the defaults; options override it.",
    )(command)


def base_settings(config_file: Path | None, base_model: Path | str | None = None) -> TrainConfig:
    """The settings a ``--config`` file gives (without one: the defaults for the family of ``base_model``, read
    from its header: an SDXL base trains at 1024 px); a problem is one line."""
    if config_file is None:
        from curator.plan.modelfile import facts_for_plan

        facts, _ = facts_for_plan(base_model or "")
        return TrainConfig.for_family(facts.family if facts else "sd1")
    from curator.settings.config import read_config

    try:
        return read_config(config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
