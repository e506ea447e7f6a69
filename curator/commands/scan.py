"""``dreamcurate scan DATASET``: analyse a dataset; terminal summary, ``--json``, ``--html``, ``--fail-on``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from curator.commands.options import context_options, dataset_options, policy_options
from curator.commands.output import ReportGuard, emit_text, guard_targets, output_errors
from curator.findings import Severity
from curator.scan.results import ScanResult
from curator.settings.options import PLAN_FIELDS, settings_file_option, training_options
from curator.textsafe import safe


class UsageLine(click.ClickException):
    """A usage error shown as one line (``Error: ...``) with exit code 2."""

    exit_code = 2


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--json", "json_out", metavar="FILE", help="Write the JSON report to FILE ('-' = standard output)."
)
@click.option(
    "--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the HTML report."
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning"]),
    help="Exit with code 1 when findings of this severity (or worse) exist.",
)
@dataset_options
@click.option("--trigger", help="Trigger word expected first in captions (default: the concept name).")
@click.option(
    "--workers", type=click.IntRange(1, 256), help="Worker processes (default: the machine's cores)."
)
@click.option("--clip-model", help="open_clip architecture name of --clip-weights (e.g. ViT-B-32).")
@click.option(
    "--clip-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Local CLIP checkpoint.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--force", is_flag=True, help="Overwrite a --json/--html file that is not a dreamcurate report."
)
@policy_options
@training_options((*PLAN_FIELDS, "max_token_length"), shorthands=True)
@settings_file_option
@context_options
def scan(dataset: Path, **kw: Any) -> None:
    """Analyse DATASET (a Kohya folder of <repeats>_<name> concepts, or a plain folder of images).

    The reports (--json, --html) say what an export with the same options keeps and the plan of it.
    Exit codes: 0 done, 1 findings at or above --fail-on, 2 usage error.
    """
    from curator.commands.options import curate, plan_options, policy_from, scan_dataset, scan_settings
    from curator.settings.options import base_settings, settings_from_options

    if not dataset.is_dir():
        what = "does not exist" if not dataset.exists() else "is not a folder"
        raise UsageLine(f"Dataset folder {what}: {dataset}")
    json_out, html_out = kw["json_out"], kw["html_out"]
    guard_targets(
        {"--json": json_out, "--html": html_out},
        ReportGuard(dataset, kw["reg_root"], kw["workspace"], kw.pop("force")),
    )
    settings = settings_from_options(kw, base_settings(kw["config_file"]))
    if settings.max_token_length not in (75, 150, 225):
        raise click.BadParameter("must be 75, 150 or 225", param_hint="'--max-token-length'")
    policy = policy_from(kw)
    options = plan_options(kw, settings)
    scan_with = scan_settings(kw, settings)
    scan_with.trigger = kw["trigger"]
    scan_with.clip_model, scan_with.clip_weights = kw["clip_model"], kw["clip_weights"]
    if kw["workers"]:
        scan_with.workers = kw["workers"]
    try:
        result = scan_dataset(dataset, scan_with)
    except click.UsageError as exc:
        raise UsageLine(exc.message) from exc
    curation = curate(result, policy)  # what every report and the summary say an export keeps
    plan = None
    if json_out or html_out is not None:
        from curator.review.curation import plan_curation

        plan = plan_curation(curation, options) if curation.kept_count else None
    json_to_stdout = json_out == "-"
    if json_out:
        _write_json(result, curation, plan, json_out)
    if html_out is not None:
        from curator.report.html import write_html

        with output_errors("--html", html_out):
            write_html(curation, html_out, plan)
    if not json_to_stdout:
        from rich.console import Console

        from curator.scan.summary import print_summary

        console = Console()
        print_summary(result, console, curation=curation)
        if json_out:
            console.print(f"JSON report: {safe(json_out)}", markup=False)
        if html_out is not None:
            console.print(f"HTML report: {safe(html_out)}", markup=False)
    if kw["fail_on"] and _fails(result, Severity(kw["fail_on"])):
        sys.exit(1)


def _write_json(result: ScanResult, curation: Any, plan: Any, target: str) -> None:
    from curator.captions.store import last_run
    from curator.dataset.workspace import Workspace

    data = result.to_json()
    data["curation"] = curation.to_json() if curation is not None else None
    data["plan"] = plan.to_json() if plan is not None else None
    caption_model = last_run(Workspace.for_dataset(result.dataset.root, result.settings.workspace))
    if caption_model is not None:  # which local model wrote suggestions (``dreamcurate caption``)
        data["caption_model"] = caption_model
    emit_text(json.dumps(data, indent=2) + "\n", target, "--json")


def _fails(result: ScanResult, threshold: Severity) -> bool:
    return any(f.severity.rank >= threshold.rank for f in result.all_findings())
