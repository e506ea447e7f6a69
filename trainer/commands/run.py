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

from curator.commands.options import context_options, dataset_options, policy_options
from curator.review.curation import Policy
from curator.settings.config import ConfigError, TrainConfig, read_config
from curator.settings.options import PLAN_FIELDS, settings_from_options, training_options
from trainer.commands.train import EXTRACT_HELP

#: TrainConfig fields offered as options of ``run``: the plan's, and a few of training's own (the rest: edit
#: OUT/train.toml and use ``dreamcurate train``)
RUN_FIELDS = (
    *PLAN_FIELDS,
    "learning_rate",
    "cache_latents",
    "sample_prompts",
    "v_parameterization",
    "vae",
    "network_alpha",
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
    """One ``run``: the dataset, the base model, the output folder, the curation policy and the training options.

    Example::

        run_pipeline(RunRequest(Path("train"), Path("sd15.safetensors"), Path("out"), yes=True,
                                overrides={"max_train_epochs": 100}), Console())
    """

    dataset: Path
    base: Path
    out: Path
    reg: Path | None = None
    workspace: Path | None = None
    caption_extension: str | None = None
    yes: bool = False  # do not ask before exporting and training
    policy: Policy = dataclasses.field(
        default_factory=Policy
    )  # what the export keeps besides the review's decisions
    force: bool = False  # replace an existing OUT (only an earlier export)
    progress: bool = True
    train: bool = True  # False: stop after the export
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig field -> value
    context: dict[str, Any] = dataclasses.field(
        default_factory=dict
    )  # the plan's context options (--gpus, ...)
    extract_lora: int = 0  # also extract a LoRA of this rank from the trained model


def run_pipeline(request: RunRequest, console: Any) -> Path:
    """Scan, summary, the one curation and its plan, HTML report, confirmation, export, training; returns the
    export folder.

    Every expected failure is a ``click.ClickException`` (one line). ``dreamcurate demo`` runs this too.
    """
    from curator.commands.export import print_export_summary
    from curator.commands.options import curate, plan_options, scan_dataset, scan_settings
    from curator.dataset.workspace import Workspace
    from curator.export.folder import ExportError, ExportOptions, check_export_target, export_dataset
    from curator.report.html import write_html
    from curator.review.curation import plan_curation
    from curator.scan.summary import print_summary

    # run has no config file: every value is an option, over the defaults of the base model's family
    settings = settings_from_options(request.overrides, TrainConfig.for_family(_base_family(request.base)))
    out = request.out
    if out.exists() and not request.force:  # say so now, not after the scan and the question
        raise click.ClickException(f"{out} already exists; use --force to replace it")
    try:  # the rest of export's refusals (a folder of the user's, inside the dataset) also come first
        check_export_target(out, request.force, request.dataset, request.reg)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    _check_base(request.base)
    options: dict[str, Any] = {
        "reg_root": request.reg,
        "workspace": request.workspace,
        "caption_extension": request.caption_extension,
        "no_progress": not request.progress,
    }
    result = scan_dataset(request.dataset, scan_settings(options, settings))
    curation = curate(result, request.policy)
    print_summary(result, console, curation=curation)

    ws = Workspace.for_dataset(request.dataset, request.workspace).ensure()
    if not curation.kept_count:
        raise click.ClickException(
            "no training image is left after curation; see the report and the findings"
        )
    plan = plan_curation(curation, plan_options(request.context, settings, request.base)).to_json()
    report = write_html(curation, ws.root / "report.html", plan=plan)
    console.print(f"HTML report: {report}", soft_wrap=True, markup=False)
    _confirm(request.yes, curation.kept_count, out)

    export_options = ExportOptions(
        force=request.force,
        progress=request.progress,
        base_model=str(request.base.absolute()),
        settings=settings,
        extra_files={"report.html": report},
    )
    try:
        exported = export_dataset(curation, out, export_options, plan)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    print_export_summary(exported, suggested_note=not request.policy.balance)
    if request.train:
        _train(exported.out / "train.toml", request.progress, request.extract_lora)
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
@dataset_options
@click.option("--yes", "-y", is_flag=True, help="do not ask before exporting and training")
@policy_options
@click.option("--force", is_flag=True, help="replace an existing OUT")
@click.option("--no-progress", is_flag=True, help="no progress bars")
@click.option("--extract-lora", type=click.IntRange(min=0), default=0, metavar="DIM", help=EXTRACT_HELP)
@training_options(RUN_FIELDS, shorthands=True)
@context_options
def run(dataset: Path, base: Path, out: Path, **kw: Any) -> None:
    """Scan, report, export and train DATASET in one go: OUT gets the curated Kohya folder, report.html,
    manifest.json, dataset.toml, train.toml and the trained model in OUT/model.

    Training options override the trainer's defaults (see dreamcurate train --help for every setting).
    """
    from rich.console import Console

    from curator.commands.options import policy_from

    context = {k: kw[k] for k in ("gpus", "vram", "gpu_class", "its", "model", "kind")}
    request = RunRequest(
        dataset=dataset,
        base=base,
        out=out,
        reg=kw["reg_root"],
        workspace=kw["workspace"],
        caption_extension=kw["caption_extension"],
        yes=kw["yes"],
        policy=policy_from(kw),
        force=kw["force"],
        progress=not kw["no_progress"],
        overrides=kw,
        context=context,
        extract_lora=kw["extract_lora"],
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


def _train(config_path: Path, progress: bool, extract_lora: int = 0) -> None:
    """Train the export's train.toml: the settings the plan used, written out in full by the export."""
    from trainer.commands.train import _run

    try:
        config = read_config(config_path)
        config.validate()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"training with {config_path}")
    _run(config, resume=False, progress=progress, extract_lora=extract_lora)
