"""``dreamcurate scan DATASET``: analyse a dataset; terminal summary, ``--json``, ``--html``, ``--fail-on``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import click

from curator.commands.output import emit_text, output_errors
from curator.findings import Severity
from curator.scan.results import ScanResult, ScanSettings


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
@click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help="Cache folder (read-only data)."
)
@click.option(
    "--reg",
    "reg_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Regularization folder.",
)
@click.option(
    "--resolution", type=click.IntRange(64, 4096), default=512, show_default=True, help="Training resolution."
)
@click.option(
    "--caption-extension", help="Caption extension training reads (default .txt; Kohya's is .caption)."
)
@click.option("--trigger", help="Trigger word expected first in captions (default: the concept name).")
@click.option(
    "--max-token-length",
    type=click.Choice(["75", "150", "225"]),
    default="75",
    show_default=True,
    help="CLIP tokens training reads per caption (Kohya max_token_length).",
)
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
def scan(
    dataset: Path,
    json_out: str | None,
    html_out: Path | None,
    fail_on: str | None,
    workspace: Path | None,
    reg_root: Path | None,
    resolution: int,
    caption_extension: str | None,
    trigger: str | None,
    max_token_length: str,
    workers: int | None,
    clip_model: str | None,
    clip_weights: Path | None,
    no_progress: bool,
) -> None:
    """Analyse DATASET (a Kohya folder of <repeats>_<name> concepts, or a plain folder of images).

    Exit codes: 0 done, 1 findings at or above --fail-on, 2 usage error.
    """
    from curator.scan.run import scan as run_scan

    if not dataset.is_dir():
        what = "does not exist" if not dataset.exists() else "is not a folder"
        raise UsageLine(f"Dataset folder {what}: {dataset}")

    if html_out is not None and importlib.util.find_spec("curator.report.html") is None:
        raise click.ClickException("HTML report not available in this build")
    settings = ScanSettings(
        resolution=resolution,
        caption_extension=caption_extension,
        trigger=trigger,
        max_token_length=int(max_token_length),
        workspace=workspace,
        reg_root=reg_root,
        clip_model=clip_model,
        clip_weights=clip_weights,
        progress=not no_progress,
    )
    if workers:
        settings.workers = workers
    try:
        result = run_scan(dataset, settings)
    except ValueError as exc:
        raise UsageLine(str(exc)) from exc
    json_to_stdout = json_out == "-"
    if json_out:
        _write_json(result, json_out)
    if html_out is not None:
        from curator.report.html import write_html  # type: ignore[attr-defined]

        with output_errors("--html", html_out):
            write_html(result, html_out)
    if not json_to_stdout:
        from rich.console import Console

        from curator.scan.summary import print_summary

        console = Console()
        print_summary(result, console)
        if json_out:
            console.print(f"JSON report: {json_out}")
        if html_out is not None:
            console.print(f"HTML report: {html_out}")
    if fail_on and _fails(result, Severity(fail_on)):
        sys.exit(1)


def _write_json(result: ScanResult, target: str) -> None:
    from curator.captions.store import last_run
    from curator.dataset.workspace import Workspace

    data = result.to_json()
    caption_model = last_run(Workspace.for_dataset(result.dataset.root, result.settings.workspace))
    if caption_model is not None:  # which local model wrote suggestions (``dreamcurate caption``)
        data["caption_model"] = caption_model
    emit_text(json.dumps(data, indent=2) + "\n", target, "--json")


def _fails(result: ScanResult, threshold: Severity) -> bool:
    return any(f.severity.rank >= threshold.rank for f in result.all_findings())
