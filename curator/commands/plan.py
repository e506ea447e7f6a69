"""``dreamcurate plan DATASET``: steps, text-encoder stop step, buckets, size advice, memory and time, before training.

By default it plans what an export keeps: the scan (cached), the workspace's review decisions and the export policy
(the one curation), with the training settings' names and defaults; ``--raw`` plans every image of the folder from
the image headers instead. Either way torch is never imported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from curator.commands.options import context_options, dataset_options, policy_options
from curator.commands.output import ReportGuard, emit_text, guard_targets
from curator.settings.options import ALIASES, PLAN_FIELDS, settings_file_option, training_options


@click.command("plan")
@click.argument("dataset", type=click.Path(path_type=Path))
@dataset_options
@policy_options
@training_options(PLAN_FIELDS, shorthands=True)
@settings_file_option
@context_options
@click.option(
    "--base",
    "base",
    type=click.Path(path_type=Path),
    help="Base model (.safetensors or diffusers folder): its real sizes replace --model's in memory and disk.",
)
@click.option(
    "--raw", is_flag=True, help="Plan every image of the folder (no scan, no review decisions, no policy)."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "json_out", metavar="FILE", help="Write the plan as JSON ('-' = standard output).")
@click.option("--force", is_flag=True, help="Overwrite a --json file that is not a dreamcurate report.")
def plan(dataset: Path, **kw: Any) -> None:
    """Plan training on DATASET: buckets, steps, text-encoder stop step, checkpoints, memory, time, size advice.

    The plan is of what `dreamcurate export` keeps with the same options (review decisions, errors and duplicates
    left out); it says what it left out and why.
    """
    from curator.commands.options import plan_options
    from curator.settings.options import base_settings, settings_from_options

    if not dataset.is_dir():
        raise click.UsageError(
            f"Dataset folder {'is not a folder' if dataset.exists() else 'does not exist'}: {dataset}"
        )
    guard_targets(
        {"--json": kw["json_out"]}, ReportGuard(dataset, kw["reg_root"], kw["workspace"], kw.pop("force"))
    )
    for name, value in kw.items():  # FloatRange lets nan through (every comparison with it is false)
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + name.replace("_", "-") + (f" ({ALIASES[name]})" if name in ALIASES else "")
            raise click.UsageError(f"{flag} must be a finite number, got {value}")
    settings = settings_from_options(kw, base_settings(kw["config_file"], kw["base"]))
    options = plan_options(kw, settings, kw["base"])
    result = _raw_plan(dataset, kw, options) if kw["raw"] else _curated_plan(dataset, kw, options)
    if kw["json_out"]:
        _emit_json(result.to_json(), kw["json_out"])
    if kw["json_out"] != "-":
        from rich.console import Console

        from curator.plan.view import print_plan

        print_plan(result, Console())


def _curated_plan(dataset: Path, kw: dict[str, Any], options: Any) -> Any:
    """The plan of the one curation (what export keeps)."""
    from curator.commands.options import curate, policy_from, scan_dataset, scan_settings
    from curator.review.curation import plan_curation

    policy = policy_from(kw)
    result = scan_dataset(dataset, scan_settings(kw, options.settings))
    if not result.dataset.train_items:
        raise click.ClickException(
            f"No training images found in {dataset} (Kohya layout: DIR/<repeats>_<name>/)"
        )
    curation = curate(result, policy)
    if not curation.kept_count:
        raise click.ClickException(
            f"No training image of {dataset} is kept ({curation.left_out_text()}); "
            "see 'dreamcurate scan', or plan the raw folder with --raw"
        )
    plan = plan_curation(curation, options)
    left = curation.left_out_text()
    plan.notes.insert(0, f"left out: {left}" if left else "nothing left out: every image is planned")
    return plan


def _raw_plan(dataset: Path, kw: dict[str, Any], options: Any) -> Any:
    """The plan of every image in the folder, sizes from the scan cache or the image headers."""
    from curator.dataset.discover import discover
    from curator.images.sizes import image_sizes
    from curator.plan.build import build_plan

    try:
        ds = discover(dataset, reg_root=kw["reg_root"], caption_extension=kw["caption_extension"])
    except NotADirectoryError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # options that contradict each other (--reg holding the dataset)
        raise click.UsageError(str(exc)) from exc
    if not ds.train_items:
        raise click.ClickException(
            f"No training images found in {dataset} (Kohya layout: DIR/<repeats>_<name>/)"
        )
    sizes, stats = image_sizes(ds, kw["workspace"])
    if not any(item.rel in sizes for item in ds.train_items):
        raise click.ClickException(
            f"No readable training image in {dataset}: all {len(ds.train_items)} are unreadable "
            "(run 'dreamcurate scan' to see why)"
        )
    plan = build_plan(ds, sizes, options)
    plan.notes.insert(0, "raw folder: review decisions and the export policy are not applied (--raw)")
    plan.sizes_from = stats
    return plan


def _emit_json(data: dict, target: str) -> None:
    emit_text(json.dumps(data, indent=2) + "\n", target, "--json")
