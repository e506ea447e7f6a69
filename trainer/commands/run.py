"""``dreamcurate run DATASET --base MODEL --out OUT``: from a raw folder to a checkpoint in one command.

Scan (cached) -> terminal summary -> HTML report -> confirmation (``--yes`` skips it; without a terminal the
answer is no) -> export of the curated folder to OUT (with ``OUT/report.html``) -> training in this process with
``OUT/train.toml``, whose every setting is written out. Importing this module is light: torch is imported when
training starts.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from curator.settings.config import ConfigError, TrainConfig, read_config, write_config
from trainer.commands.train import _given, _option_for, apply_overrides, usage_error

#: TrainConfig fields offered as options of ``run`` (the rest: edit OUT/train.toml and use ``dreamcurate train``)
RUN_FIELDS = (
    "resolution",
    "min_bucket_reso",
    "max_bucket_reso",
    "max_train_epochs",
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "text_encoder_sensitivity",
    "stop_text_encoder_training",
    "save_every_n_epochs",
    "save_precision",
    "mixed_precision",
    "gradient_checkpointing",
    "cache_latents",
    "seed",
    "sample_prompts",
    "v_parameterization",
    "vae",
)


def _with_run_options(command: Any) -> Any:
    specs = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in reversed(RUN_FIELDS):
        command = _option_for(specs[name])(command)
    return command


def _plan_inputs(config: TrainConfig, base: Path | None = None) -> Any:
    """The plan's inputs from the run's training settings and base model (its real sizes for memory and disk)."""
    from curator.plan.handoff import PlanInputs

    return PlanInputs(
        batch=config.train_batch_size,
        epochs=config.max_train_epochs or None,
        steps=config.max_train_steps or None,
        grad_accum=config.gradient_accumulation_steps,
        sensitivity=config.text_encoder_sensitivity or None,
        te_stop=config.stop_text_encoder_training if config.stop_text_encoder_training > 0 else None,
        resolution=config.resolution,
        save_precision=config.save_precision,
        base_model=str(base) if base else "",
    )


def _confirm(yes: bool, kept: int, out: Path) -> None:
    """Ask before exporting and training; no terminal to ask on means no."""
    if yes:
        return
    if not sys.stdin or not sys.stdin.isatty():
        raise click.ClickException("not confirmed: no terminal to ask on; pass --yes to export and train")
    if not click.confirm(f"Export {kept} images to {out} and train?", default=False):
        raise click.ClickException("stopped before export; nothing was written to OUT")


@dataclasses.dataclass
class RunRequest:
    """One ``run``: the dataset, the base model, the output folder, the curation policy and training overrides.

    Example::

        run_pipeline(RunRequest(Path("train"), Path("sd15.safetensors"), Path("out"), yes=True,
                                overrides={"max_train_epochs": 100}), Console())
    """

    dataset: Path
    base: Path
    out: Path
    reg: Path | None = None
    workspace: Path | None = None
    yes: bool = False  # do not ask before exporting and training
    strict: bool = False  # drop images with warnings too
    target_size: int | None = None  # per concept: keep at most N images, the most diverse
    balance: bool = False  # use repeats that balance the concepts
    force: bool = False  # replace an existing OUT (only an earlier export)
    progress: bool = True
    train: bool = True  # False: stop after the export
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig field -> value


def run_pipeline(request: RunRequest, console: Any) -> Path:
    """Scan, summary, HTML report, confirmation, export, training; returns the export folder.

    Every expected failure is a ``click.ClickException`` (one line). ``dreamcurate demo`` runs this too.
    """
    from curator.commands.export import print_export_summary, run_scan
    from curator.dataset.workspace import Workspace
    from curator.export.folder import (
        ExportError,
        ExportOptions,
        check_export_target,
        export_dataset,
        plan_verdicts,
        training_settings,
    )
    from curator.plan.handoff import plan_json
    from curator.report.html import write_html
    from curator.review.decisions import DecisionStore
    from curator.scan.summary import print_summary

    overrides = _given(request.overrides)
    try:
        preview = apply_overrides(TrainConfig.for_family(_base_family(request.base)), overrides)
        preview.validate(check_paths=False)
    except ConfigError as exc:  # run has no config file: every training value came from the command line
        raise usage_error(exc, overrides) from exc
    out = request.out
    if out.exists() and not request.force:  # say so now, not after the scan and the question
        raise click.ClickException(f"{out} already exists; use --force to replace it")
    try:  # the rest of export's refusals (a folder of the user's, inside the dataset) also come first
        check_export_target(out, request.force, request.dataset, request.reg)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    _check_base(request.base)
    buckets = (
        preview.min_bucket_reso,
        preview.max_bucket_reso,
        preview.bucket_reso_steps,
        preview.bucket_no_upscale,
    )
    result = run_scan(request.dataset, request.reg, request.workspace, preview.resolution, buckets)
    print_summary(result, console)

    ws = Workspace.for_dataset(request.dataset, request.workspace).ensure()
    store = DecisionStore(ws)
    options = ExportOptions(
        strict=request.strict,
        force=request.force,
        target_size=request.target_size,
        balance=request.balance,
        base_model=str(request.base.absolute()),
    )
    options.training = training_settings(result)  # resolution and buckets as scanned, i.e. as configured
    options.training.train_batch_size = preview.train_batch_size
    verdicts, _ = plan_verdicts(result, store, options)
    kept = {rel for rel, v in verdicts.items() if v.kept}
    if not any(not result.record(rel).item.is_reg for rel in kept):
        raise click.ClickException(
            "no training image is left after curation; see the report and the findings"
        )
    options.plan = plan_json(result, kept, _plan_inputs(preview, request.base))
    report = write_html(result, ws.root / "report.html", plan=options.plan)
    console.print(f"HTML report: {report}", soft_wrap=True)
    _confirm(request.yes, len(kept), out)

    options.extra_files = {"report.html": report}
    try:
        exported = export_dataset(result, out, options, store)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    print_export_summary(exported, suggested_note=not request.balance)
    if request.train:
        _train(exported.out / "train.toml", overrides, request.progress)
    return exported.out


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--base",
    "base",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="base model file or folder",
)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="output folder"
)
@click.option(
    "--reg", type=click.Path(exists=True, file_okay=False, path_type=Path), help="regularization folder"
)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="workspace (default DATASET/.dreamcurate)",
)
@click.option("--yes", "-y", is_flag=True, help="do not ask before exporting and training")
@click.option("--strict", is_flag=True, help="drop images with warnings too")
@click.option(
    "--target-size", type=click.IntRange(min=1), help="per concept: keep at most N images, the most diverse"
)
@click.option("--balance", is_flag=True, help="use repeats that balance the concepts")
@click.option("--force", is_flag=True, help="replace an existing OUT")
@click.option("--no-progress", is_flag=True, help="no progress bars")
@_with_run_options
def run(
    dataset: Path,
    base: Path,
    out: Path,
    reg: Path | None,
    workspace: Path | None,
    yes: bool,
    strict: bool,
    target_size: int | None,
    balance: bool,
    force: bool,
    no_progress: bool,
    **overrides: Any,
) -> None:
    """Scan, report, export and train DATASET in one go: OUT gets the curated Kohya folder, report.html,
    manifest.json, dataset.toml, train.toml and the trained model in OUT/model.

    Training options override the trainer's defaults (see dreamcurate train --help for every setting).
    """
    from rich.console import Console

    request = RunRequest(
        dataset=dataset,
        base=base,
        out=out,
        reg=reg,
        workspace=workspace,
        yes=yes,
        strict=strict,
        target_size=target_size,
        balance=balance,
        force=force,
        progress=not no_progress,
        overrides=overrides,
    )
    run_pipeline(request, Console(highlight=False))


def _base_family(base: Path) -> str:
    """The base model's family from its header ("sd1" when it cannot be read: the refusal comes later, in words)."""
    from curator.plan.modelfile import facts_for_plan

    facts, _ = facts_for_plan(base)
    return facts.family if facts else "sd1"


def _check_base(base: Path) -> None:
    """Refuse a base model the trainer would refuse, before any work (reads only the file's header)."""
    from trainer.models.errors import ModelError
    from trainer.models.info import inspect_model

    try:
        inspect_model(base)
    except ModelError as exc:
        raise click.ClickException(f"base model {base}: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot read base model {base}: {exc}") from exc


def _train(config_path: Path, overrides: dict[str, Any], progress: bool) -> None:
    """Write the full config (every setting, with the overrides) over the export's train.toml and train it."""
    from trainer.commands.train import _run

    try:
        config = apply_overrides(read_config(config_path), _given(overrides))
        config.validate()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    write_config(config, config_path)
    click.echo(f"training with {config_path}")
    _run(config, resume=False, progress=progress)
