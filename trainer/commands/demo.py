"""``dreamcurate demo``: the embedded default. Generates a sample dataset and a tiny model, then runs the same
pipeline as ``dreamcurate run``: scan, summary, HTML report, export of the curated Kohya folder, a few training
steps at 128 px, a saved model and a sample. One function per stage.

Importing this module is light: no torch until a stage that trains runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from curator.scan.results import ScanResult, ScanSettings


def make_dataset(out: Path) -> Path:
    """Stage 1: the deterministic sample dataset under ``out/train``; returns its root."""
    from curator.dataset.sample import make_sample_dataset

    return make_sample_dataset(out)


def scan_dataset(root: Path, workers: int | None = None) -> ScanResult:
    """Stage 2: scan it (cache in ``root/.dreamcurate``)."""
    from curator.scan.run import scan

    settings = ScanSettings()
    if workers:
        settings.workers = workers
    return scan(root, settings)


def show_scan(result: ScanResult, console: Console) -> None:
    """Stage 3: the terminal summary (with what an export of the default policy keeps) and where the files are."""
    from curator.commands.options import curate
    from curator.review.curation import Policy
    from curator.scan.summary import print_summary

    print_summary(result, console, curation=curate(result, Policy()))
    console.print(f"\nSample dataset: {result.dataset.root}")
    console.print(f"Scan cache:     {result.dataset.root / '.dreamcurate'}")
    console.print(f"Try:            dreamcurate scan {result.dataset.root} --json -")


#: The demo's training run: the tiny model at 128 px, a few steps, one sample (a couple of minutes on 2 CPU cores).
DEMO_TRAINING: dict[str, Any] = {
    "resolution": 128,
    "min_bucket_reso": 64,
    "max_bucket_reso": 256,
    "bucket_reso_steps": 32,  # 64 px steps leave only three buckets at 128 px
    "max_train_epochs": 0,
    "max_train_steps": 12,
    "train_batch_size": 2,
    "learning_rate": 1e-4,
    "save_every_n_epochs": 0,
    "sample_prompts": ["mystyle, a cat"],
    "sample_steps": 8,
    "output_name": "demo",
}


def curate_and_train(root: Path, out: Path, console: Console, progress: bool = True) -> Path:
    """Stage 4: write the tiny model, then the same pipeline as ``dreamcurate run``: scan, HTML report, export of
    the curated Kohya folder to ``out/curated``, training, sample. Returns the export folder."""
    from trainer.commands.run import RunRequest, run_pipeline
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(out / "models" / "tiny-sd1.safetensors")
    console.print(f"\nTiny model: {model}", soft_wrap=True)
    request = RunRequest(
        dataset=root,
        base=model,
        out=out / "curated",
        yes=True,
        force=True,
        progress=progress,
        overrides=dict(DEMO_TRAINING),
    )
    return run_pipeline(request, console)


def show_outputs(curated: Path, console: Console) -> None:
    """Stage 5: where everything is."""
    from curator.settings.config import read_config

    config = read_config(curated / "train.toml")
    output_dir = Path(config.output_dir)
    console.print("")
    for label, path in (
        ("Curated folder", curated / "img"),
        ("Quality report", curated / "report.html"),
        ("Manifest", curated / "manifest.json"),
        ("Kohya config", curated / "dataset.toml"),
        ("Train config", curated / "train.toml"),
        ("Trained model", output_dir / f"{config.output_name}.safetensors"),
        ("Samples", output_dir / "samples"),
        ("Events", output_dir / "events.jsonl"),
    ):
        console.print(f"{label + ':':<16}{path}", soft_wrap=True)
    console.print(f"Train again:    dreamcurate train {curated / 'train.toml'}", soft_wrap=True)


@click.command()
@click.option("--no-train", is_flag=True, help="Stop after the scan (no tiny model, no export, no training).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: Path, no_train: bool, no_progress: bool) -> None:
    """Generate a sample dataset, scan it, report, export the curated folder and train a tiny model on it for a
    few steps (CPU, a couple of minutes)."""
    console = Console(highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    root = make_dataset(out)
    if no_train:
        show_scan(scan_dataset(root), console)
        return
    curated = curate_and_train(root, out, console, progress=not no_progress)
    show_outputs(curated, console)
