"""``dreamcurate demo``: the embedded default. Generates a sample dataset, scans it, prints the summary and where
the files are. One function per stage so later stages (export, tiny model, training) compose onto it.

Importing this module is light: no torch until a stage that trains runs.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from curator.results import ScanResult, ScanSettings


def make_dataset(out: Path) -> Path:
    """Stage 1: the deterministic sample dataset under ``out/train``; returns its root."""
    from curator.sample import make_sample_dataset

    return make_sample_dataset(out)


def scan_dataset(root: Path, workers: int | None = None) -> ScanResult:
    """Stage 2: scan it (cache in ``root/.dreamcurate``)."""
    from curator.scan import scan

    settings = ScanSettings()
    if workers:
        settings.workers = workers
    return scan(root, settings)


def show_scan(result: ScanResult, console: Console) -> None:
    """Stage 3: the terminal summary and where the files are."""
    from curator.summary import print_summary

    print_summary(result, console)
    console.print(f"\nSample dataset: {result.dataset.root}")
    console.print(f"Scan cache:     {result.dataset.root / '.dreamcurate'}")
    console.print(f"Try:            dreamcurate scan {result.dataset.root} --json -")


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
def demo(out: Path) -> None:
    """Generate a sample dataset, scan it and print the summary."""
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    root = make_dataset(out)
    show_scan(scan_dataset(root), console)
