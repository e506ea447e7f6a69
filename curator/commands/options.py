"""Options several commands share, declared once: the dataset's (``--reg``, ``--workspace``,
``--caption-extension``), the curation policy's (``--strict``, ``--drop``, ``--target-size``, ``--balance``) and the
plan's context (``--gpus``, ``--vram``, ``--gpu``, ``--its``, ``--model``, ``--base``, ``--kind``); with the helpers
that turn them into the one scan, the one curation and the one plan of a command.

The training settings' options come from :mod:`curator.settings.options` (one per TrainConfig field).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curator.plan.estimates import DEFAULT_GPU_CLASS, ITS_TABLE
from curator.settings.config import TrainConfig

if TYPE_CHECKING:
    from curator.plan.build import PlanOptions
    from curator.review.curation import Curation, Policy
    from curator.scan.results import ScanResult, ScanSettings


def _stack(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


dataset_options = _stack(
    click.option(
        "--reg",
        "reg_root",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Regularization folder (Kohya layout).",
    ),
    click.option(
        "--workspace",
        type=click.Path(file_okay=False, path_type=Path),
        help="Workspace folder (scan cache, review decisions; default DATASET/.dreamcurate).",
    ),
    click.option(
        "--caption-extension",
        help="Caption extension training reads (default: detected, .txt unless only .caption files exist).",
    ),
)

policy_options = _stack(
    click.option(
        "--strict", is_flag=True, help="Drop items with any warning too (default: drop errors only)."
    ),
    click.option(
        "--drop",
        "drop_codes",
        metavar="CODE[,CODE...]",
        default="",
        help="Also drop items with warnings of these finding codes (e.g. screenshot,blurry).",
    ),
    click.option(
        "--target-size",
        type=click.IntRange(min=1),
        help="Per concept: keep at most N images, the N that cover the set best.",
    ),
    click.option(
        "--balance", is_flag=True, help="Use repeats that balance the concepts (the plan counts them)."
    ),
)

context_options = _stack(
    click.option(
        "--gpus", type=click.IntRange(1, 64), default=1, show_default=True, help="GPUs (processes)."
    ),
    click.option("--vram", type=click.FloatRange(1, 512), help="Your GPU's memory in GB (for warnings)."),
    click.option(
        "--gpu",
        "gpu_class",
        type=click.Choice(list(ITS_TABLE), case_sensitive=False),
        help=f"GPU class for the time estimate [default: {DEFAULT_GPU_CLASS}].",
    ),
    click.option(
        "--its",
        type=click.FloatRange(min=0, min_open=True, max=1e6),
        help="Measured optimizer steps per second (replaces the table).",
    ),
    click.option("--model", type=click.Choice(["sd15", "sd2"]), default="sd15", show_default=True),
    click.option(
        "--kind",
        default="style",
        show_default=True,
        help="What the dataset teaches, for the size advice: style or subject, or per concept "
        "(mystyle=style,otherchar=subject).",
    ),
)


def policy_from(kw: dict[str, Any]) -> Policy:
    """The curation policy the options give; unknown finding codes in ``--drop`` are a usage error."""
    from curator.checks import all_codes
    from curator.review.curation import Policy

    codes = tuple(c.strip() for c in (kw.get("drop_codes") or "").split(",") if c.strip())
    unknown = [c for c in codes if c not in all_codes()]
    if unknown:
        raise click.BadParameter(f"unknown finding code {unknown[0]!r}", param_hint="'--drop'")
    return Policy(
        strict=bool(kw.get("strict")),
        drop_codes=codes,
        target_size=kw.get("target_size"),
        balance=bool(kw.get("balance")),
    )


def scan_settings(kw: dict[str, Any], settings: TrainConfig) -> ScanSettings:
    """The scan's settings: the training settings' resolution, buckets and token length, the dataset options."""
    from curator.scan.results import ScanSettings

    return ScanSettings(
        resolution=settings.resolution,
        min_bucket_reso=settings.min_bucket_reso,
        max_bucket_reso=settings.max_bucket_reso,
        bucket_reso_steps=settings.bucket_reso_steps,
        bucket_no_upscale=settings.bucket_no_upscale,
        max_token_length=settings.max_token_length,
        caption_extension=kw.get("caption_extension"),
        workspace=kw.get("workspace"),
        reg_root=kw.get("reg_root"),
        progress=not kw.get("no_progress", False),
    )


def scan_dataset(dataset: Path, settings: ScanSettings) -> ScanResult:
    """Scan ``dataset`` with the cache (only changed files are analysed again); a bad setting is a usage error."""
    from curator.scan.run import scan

    try:
        return scan(dataset, settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def curate(result: ScanResult, policy: Policy) -> Curation:
    """The one curation of a command: the scan, the workspace's review decisions and the policy."""
    from curator.dataset.workspace import Workspace
    from curator.review.curation import build_curation
    from curator.review.decisions import DecisionStore

    store = DecisionStore(Workspace.for_dataset(result.dataset.root, result.settings.workspace))
    return build_curation(result, store, policy)


def plan_options(
    kw: dict[str, Any], settings: TrainConfig, base_model: Path | str | None = None
) -> PlanOptions:
    """The plan's options: the settings and the context options; a bad ``--kind`` is a usage error."""
    from curator.plan.build import PlanOptions, concept_kinds
    from curator.plan.modelfile import facts_for_plan

    try:
        concept_kinds(kw.get("kind") or "style")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--kind'") from exc
    facts, note = facts_for_plan(base_model or "")
    return PlanOptions(
        settings=settings,
        num_processes=kw.get("gpus") or 1,
        vram_gb=kw.get("vram"),
        gpu_class=kw.get("gpu_class"),
        measured_its=kw.get("its"),
        model=kw.get("model") or "sd15",
        base_model=facts,
        base_model_note=note,
        kind=kw.get("kind") or "style",
    )
