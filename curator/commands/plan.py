"""``dreamcurate plan DATASET``: steps, text-encoder stop step, buckets, size advice, memory and time, before training.

Image sizes come from the scan cache when it holds them, else from image headers (nothing is decoded); torch is never
imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from curator.commands.output import emit_text
from curator.plan.estimates import DEFAULT_GPU_CLASS, ITS_TABLE

if TYPE_CHECKING:
    from curator.plan.steps import PlanOptions


@click.command("plan")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--resolution", type=click.IntRange(64, 4096), help="Training resolution [default: 512; SDXL base: 1024]."
)
@click.option("--batch", type=click.IntRange(1, 1024), default=1, show_default=True, help="Batch size.")
@click.option(
    "--grad-accum", type=click.IntRange(1, 1024), default=1, show_default=True, help="Gradient accumulation."
)
@click.option("--gpus", type=click.IntRange(1, 64), default=1, show_default=True, help="GPUs (processes).")
@click.option("--epochs", type=click.IntRange(1), help="Max train epochs [default: 200 unless --steps].")
@click.option("--steps", type=click.IntRange(1), help="Max train steps (instead of epochs).")
@click.option(
    "--save-every",
    type=click.IntRange(0),
    default=40,
    show_default=True,
    help="Save every N epochs (0: end only).",
)
@click.option(
    "--te-sensitivity",
    type=click.FloatRange(0, 1),
    help="Stop the text encoder after this fraction of the steps.",
)
@click.option("--te-stop", type=click.IntRange(0), help="Stop the text encoder at this optimizer step.")
@click.option("--no-te", is_flag=True, help="Do not train the text encoder at all.")
@click.option("--train-te", is_flag=True, help="SDXL: train the text encoders too (off by default).")
@click.option(
    "--reg",
    "reg_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Regularization folder.",
)
@click.option("--caption-extension", help="Caption extension training reads (default .txt).")
@click.option("--bucket-min", type=click.IntRange(64), help="[default: 256]")
@click.option("--bucket-max", type=click.IntRange(64), help="[default: 1280; SDXL base: 2048]")
@click.option("--bucket-steps", type=click.IntRange(8), help="[default: 64]")
@click.option("--no-upscale", is_flag=True, help="bucket_no_upscale: never enlarge images.")
@click.option("--no-buckets", is_flag=True, help="Crop every image to resolution x resolution.")
@click.option("--vram", type=click.FloatRange(1, 512), help="Your GPU's memory in GB (for warnings).")
@click.option(
    "--gpu",
    "gpu_class",
    type=click.Choice(list(ITS_TABLE), case_sensitive=False),
    help=f"GPU class for the time estimate [default: {DEFAULT_GPU_CLASS}].",
)
@click.option(
    "--its",
    type=click.FloatRange(min=0, min_open=True),
    help="Measured optimizer steps per second (replaces the table).",
)
@click.option(
    "--save-precision", type=click.Choice(["float", "fp16", "bf16"]), default="float", show_default=True
)
@click.option(
    "--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default="fp16", show_default=True
)
@click.option("--gradient-checkpointing", is_flag=True, help="Gradient checkpointing on.")
@click.option("--8bit-adam", "use_8bit_adam", is_flag=True, help="8-bit AdamW.")
@click.option("--optimizer", type=click.Choice(["AdamW", "AdamW8bit", "Adafactor"]), help="optimizer_type.")
@click.option("--fused-backward-pass", is_flag=True, help="SDXL: Adafactor steps in the backward pass.")
@click.option("--full-bf16", is_flag=True, help="SDXL: bf16 weights and gradients.")
@click.option("--cache-te-outputs", is_flag=True, help="SDXL: cache_text_encoder_outputs (frozen encoders).")
@click.option("--model", type=click.Choice(["sd15", "sd2", "sdxl"]), default="sd15", show_default=True)
@click.option(
    "--base",
    "base",
    type=click.Path(path_type=Path),
    help="Base model (.safetensors or diffusers folder): its real sizes replace --model's in memory and disk.",
)
@click.option(
    "--kind",
    type=click.Choice(["style", "subject"]),
    default="style",
    show_default=True,
    help="What the dataset teaches (size advice).",
)
@click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), help="Workspace folder (scan cache)."
)
@click.option("--json", "json_out", metavar="FILE", help="Write the plan as JSON ('-' = standard output).")
def plan(dataset: Path, **kw: Any) -> None:
    """Plan training on DATASET: buckets, steps, text-encoder stop step, checkpoints, memory, time, size advice."""
    from curator.dataset.discover import discover
    from curator.images.sizes import image_sizes
    from curator.plan.steps import build_plan

    if not dataset.is_dir():
        raise click.UsageError(
            f"Dataset folder {'is not a folder' if dataset.exists() else 'does not exist'}: {dataset}"
        )
    options = _options(kw)
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
    result = build_plan(ds, sizes, options)
    if kw["json_out"]:
        data = result.to_json()
        data["sizes_from"] = stats
        _emit_json(data, kw["json_out"])
    if kw["json_out"] != "-":
        from rich.console import Console

        from curator.plan.view import print_plan

        print_plan(result, Console())


def _options(kw: dict[str, Any]) -> PlanOptions:
    from curator.plan.steps import PlanOptions

    if kw["epochs"] is not None and kw["steps"] is not None:
        raise click.UsageError("give --epochs or --steps, not both")
    if kw["te_sensitivity"] is not None and kw["te_stop"] is not None:
        raise click.UsageError("give --te-sensitivity or --te-stop, not both")
    epochs = kw["epochs"] if kw["epochs"] is not None else (None if kw["steps"] else 200)
    from curator.plan.modelfile import facts_for_plan
    from curator.settings.config import TrainConfig

    facts, note = facts_for_plan(kw["base"])
    family = facts.family if facts else ("sdxl" if kw["model"] == "sdxl" else "sd1")
    defaults = TrainConfig.for_family(family)  # the family's resolution and buckets, unless given
    for flag, name in (
        ("resolution", "resolution"),
        ("bucket_min", "min_bucket_reso"),
        ("bucket_max", "max_bucket_reso"),
        ("bucket_steps", "bucket_reso_steps"),
    ):
        kw[flag] = kw[flag] if kw[flag] is not None else getattr(defaults, name)
    if kw["bucket_min"] > kw["bucket_max"]:
        raise click.UsageError("--bucket-min must not exceed --bucket-max")
    options = PlanOptions(
        resolution=kw["resolution"],
        batch_size=kw["batch"],
        gradient_accumulation_steps=kw["grad_accum"],
        num_processes=kw["gpus"],
        max_train_epochs=epochs,
        max_train_steps=kw["steps"],
        save_every_n_epochs=kw["save_every"] or None,
        te_sensitivity=kw["te_sensitivity"],
        stop_text_encoder_training=kw["te_stop"],
        train_text_encoder=False if kw["no_te"] else True if kw["train_te"] else None,
        min_bucket_reso=kw["bucket_min"],
        max_bucket_reso=kw["bucket_max"],
        bucket_reso_steps=kw["bucket_steps"],
        bucket_no_upscale=kw["no_upscale"],
        enable_bucket=not kw["no_buckets"],
        vram_gb=kw["vram"],
        gpu_class=kw["gpu_class"],
        measured_its=kw["its"],
        save_precision=kw["save_precision"],
        mixed_precision=kw["mixed_precision"],
        gradient_checkpointing=kw["gradient_checkpointing"],
        use_8bit_adam=kw["use_8bit_adam"],
        optimizer_type=kw["optimizer"] or "",
        fused_backward_pass=kw["fused_backward_pass"],
        full_bf16=kw["full_bf16"],
        cache_text_encoder_outputs=kw["cache_te_outputs"],
        model=kw["model"],
        base_model=facts,
        base_model_note=note,
        kind=kw["kind"],
    )
    try:
        options.bucket_settings()  # the bucket rules the trainer shares, checked before any file is read
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return options


def _emit_json(data: dict, target: str) -> None:
    emit_text(json.dumps(data, indent=2) + "\n", target, "--json")
