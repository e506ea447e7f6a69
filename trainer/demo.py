"""``dreamcurate demo``: the embedded default. Generates a sample dataset, scans it, prints the summary, then
copies the kept images into a curated Kohya folder, writes the tiny model, trains it for a few steps at 128 px,
saves it and renders a sample. One function per stage so later stages (export) compose onto it.

Importing this module is light: no torch until a stage that trains runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from curator.results import ScanResult, ScanSettings

if TYPE_CHECKING:
    from trainer.config import TrainConfig


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


def curate_kept(result: ScanResult, out: Path) -> Path:
    """Stage 4: the kept images (decoded, no error finding, as export keeps them) with their captions, copied into a
    Kohya folder ``out/curated``; returns its root. (The lead may route this through ``export``.)"""
    import shutil

    from curator.findings import Severity

    root = out / "curated"
    for record in result.records:
        if record.item.is_reg or not record.decoded or record.worst is Severity.ERROR:
            continue
        folder = root / f"{record.item.repeats}_{record.item.concept}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record.item.path, folder / record.item.path.name)
        if record.item.caption_path is not None:
            shutil.copy2(record.item.caption_path, folder / (record.item.path.stem + ".txt"))
    return root


def demo_train_config(model: Path, data: Path, out: Path, prompt: str) -> TrainConfig:
    """The demo's training run: the tiny model at 128 px, a few steps, one sample."""
    from trainer.config import TrainConfig

    return TrainConfig(
        pretrained_model_name_or_path=str(model),
        train_data_dir=str(data),
        output_dir=str(out),
        output_name="demo",
        resolution=128,
        min_bucket_reso=64,
        max_bucket_reso=256,
        max_train_epochs=0,
        max_train_steps=12,
        train_batch_size=2,
        learning_rate=1e-4,
        save_every_n_epochs=0,
        sample_prompts=[prompt],
        sample_steps=8,
    )


def train_tiny(curated: Path, out: Path, console: Console) -> Any:
    """Stage 5: write the tiny model, train it on the curated folder, save it and render a sample."""
    from trainer.config import write_config
    from trainer.loop import train
    from trainer.tiny import write_tiny_model

    model = write_tiny_model(out / "models" / "tiny-sd1.safetensors")
    config = demo_train_config(model, curated, out / "training", prompt="mystyle, a cat")
    config_path = out / "train.toml"
    write_config(config, config_path)
    console.print(
        f"\nTraining the tiny model ({config.max_train_steps} steps at {config.resolution} px) ...",
        soft_wrap=True,
    )
    result = train(config)
    console.print(f"Base model:   {model}", soft_wrap=True)
    console.print(f"Train config: {config_path}   (dreamcurate train {config_path})", soft_wrap=True)
    console.print(f"Trained:      {result.final_path}", soft_wrap=True)
    console.print(f"Sample:       {result.samples[-1] if result.samples else '-'}", soft_wrap=True)
    console.print(f"Events:       {out / 'training' / 'events.jsonl'}", soft_wrap=True)
    return result


@click.command()
@click.option("--no-train", is_flag=True, help="Stop after the scan (no tiny model, no training).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
def demo(out: Path, no_train: bool) -> None:
    """Generate a sample dataset, scan it, curate it, and train a tiny model on it for a few steps (CPU)."""
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    root = make_dataset(out)
    result = scan_dataset(root)
    show_scan(result, console)
    if no_train:
        return
    curated = curate_kept(result, out)
    console.print(f"Curated copy: {curated}", soft_wrap=True)
    train_tiny(curated, out, console)
