"""``dreamcurate lora extract`` and ``dreamcurate lora check``: a Kohya-format LoRA from a DreamBooth result, and proof
that a LoRA file loads the way diffusers (and so WebUI / ComfyUI) loads it. Importing this module stays light (click
only); torch and diffusers are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trainer.models.errors import ModelError

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}
MODEL_PATH = click.Path(exists=True, path_type=Path)


@click.group(context_settings=_CONTEXT)
def lora() -> None:
    """LoRA files in Kohya's format (what WebUI, ComfyUI, Kohya and diffusers load): extract, check."""


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def print_extraction(result: Any, out: Path, show_layers: bool) -> None:
    size = out.stat().st_size
    click.echo(f"wrote {out} ({len(result.layers)} layers, {size / 1e6:.1f} MB)")
    for part, label in (("unet", "UNet"), ("te", "text encoder")):
        row = result.summary(part)
        if not row["layers"]:
            click.echo(f"  {label:<13} unchanged: not extracted")
            continue
        ranks = (
            "-".join(str(r) for r in (row["ranks"][0], row["ranks"][-1]))
            if len(row["ranks"]) > 1
            else row["ranks"][0]
        )
        click.echo(
            f"  {label:<13} {row['layers']} layers, rank {ranks}, kept {_percent(row['mean_kept'])} of the difference "
            f"on average (worst {_percent(row['worst_kept'])}: {row['worst_layer']})"
        )
    if result.te_relative_change:
        click.echo(
            f"  text encoder changed by {result.te_relative_change:.2e} of its weights (extracted: it carries "
            "the trigger word)"
        )
    lost = {k: v for k, v in result.untargeted.items() if v}
    if lost:
        parts = ", ".join(f"{'UNet' if k == 'unet' else 'text encoder'} {v:.2e}" for k, v in lost.items())
        click.echo(
            f"  not carried (changes outside the extracted layers: norms, embeddings, biases, convs without --conv-dim): {parts} relative"
        )
    if show_layers:
        for row in result.layers:
            click.echo(f"    {row.name:<90} rank {row.rank:>4}  kept {_percent(row.kept):>8}")


@lora.command(short_help="A LoRA from a DreamBooth result (SVD of the difference).")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--base", "base", type=MODEL_PATH, required=True, help="The model the tuned one was trained from."
)
@click.option("--tuned", "tuned", type=MODEL_PATH, required=True, help="The DreamBooth / fine-tuned model.")
@click.option(
    "--dim",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Rank of linear and 1x1 conv layers (the most, with --fro).",
)
@click.option(
    "--conv-dim",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Rank of 3x3 conv layers (0 = not extracted).",
)
@click.option(
    "--fro",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Dynamic rank: per layer the fewest singular values keeping this fraction of its difference's "
    "Frobenius norm (at most --dim / --conv-dim).",
)
@click.option(
    "--clamp-quantile",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.99,
    show_default=True,
    help="Clamp up/down values at this quantile, as Kohya (1 = no clamping).",
)
@click.option(
    "--save-precision",
    type=click.Choice(["float", "fp16", "bf16"]),
    default="float",
    show_default=True,
    help="Precision of the written tensors (fp16 can weaken small differences).",
)
@click.option(
    "--device", default="cpu", show_default=True, help="Where the SVDs run (cpu, cuda, cuda:1, ...)."
)
@click.option("--force", is_flag=True, help="Replace an existing OUT (a model file only).")
@click.option("--layers", "show_layers", is_flag=True, help="Print every layer's rank and kept share.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def extract(
    out: Path,
    base: Path,
    tuned: Path,
    dim: int,
    conv_dim: int,
    fro: float | None,
    clamp_quantile: float,
    save_precision: str,
    device: str,
    force: bool,
    show_layers: bool,
    as_json: bool,
) -> None:
    """Extract OUT (.safetensors, Kohya format) from the weight difference TUNED - BASE.

    "kept" is the share of a layer's difference the LoRA reproduces: 1 - |diff - up x down| / |diff| (Frobenius).
    The text encoder is extracted whenever it changed at all.
    """
    from trainer.lora.extract import extract_file

    try:
        result = extract_file(
            base, tuned, out, dim, conv_dim, clamp_quantile, fro, save_precision, force, device
        )
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(extraction_json(result, out), indent=2))
    else:
        print_extraction(result, out, show_layers)


def extraction_json(result: Any, out: Path) -> dict[str, Any]:
    """``lora extract --json``."""
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "unet": result.summary("unet"),
        "text_encoder": result.summary("te"),
        "text_encoder_relative_change": result.te_relative_change,
        "untargeted_relative_change": result.untargeted,
        "layers": [row.to_json() for row in result.layers],
    }


@lora.command(short_help="Load a LoRA as diffusers does; compare with the tuned model.")
@click.argument("base", type=MODEL_PATH)
@click.argument("lora_path", metavar="LORA", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tuned", type=MODEL_PATH, default=None, help="Compare base + LoRA with this model.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where samples/ goes [default: LORA's folder].",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the side-by-side sample.")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Sampling steps.")
@click.option("--no-sample", is_flag=True, help="Skip the side-by-side sample.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def check(
    base: Path,
    lora_path: Path,
    tuned: Path | None,
    output_dir: Path | None,
    seed: int,
    steps: int,
    no_sample: bool,
    as_json: bool,
) -> None:
    """Load LORA onto BASE with diffusers' load_lora_weights and count the layers it applied (exit 1 when any is
    not); with --tuned, relative errors of base + LoRA against TUNED on fixed inputs and a same-seed sample of both
    side by side in OUTPUT_DIR/samples."""
    from trainer.lora import check as checks
    from trainer.models.io import load_model

    try:
        base_model = load_model(base)
        pipe = checks.base_pipeline(base_model)
        keys = checks.apply_lora(pipe, lora_path, base_model.family)
        report: dict[str, Any] = {"lora": str(lora_path), "keys": keys.to_json()}
        if tuned is not None:
            tuned_model = load_model(tuned)
            with_lora = checks.lora_model(base_model, pipe)
            plain = load_model(base)
            report["relative_error"] = checks.compare_outputs(with_lora, tuned_model, plain)
            if not no_sample:
                folder = output_dir or lora_path.parent
                sheet = checks.side_by_side(with_lora, tuned_model, folder, lora_path.stem, seed, steps)
                report["sample"] = str(sheet)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_check(report)
    if keys.unmatched:
        raise SystemExit(1)


def _print_check(report: dict[str, Any]) -> None:
    keys = report["keys"]
    click.echo(
        f"{report['lora']}: {keys['layers']} layers, {keys['matched']} applied by diffusers' "
        f"load_lora_weights, {len(keys['unmatched'])} not applied"
    )
    for name in keys["unmatched"][:10]:
        click.echo(f"  not applied: {name}")
    errors = report.get("relative_error")
    if errors:
        for part, label in (("unet", "UNet"), ("text_encoder", "text encoder")):
            click.echo(
                f"  {label:<13} output error {errors[part]:.2e} relative to the tuned model "
                f"({errors[part + '_of_change']:.2e} of the tuned model's change)"
            )
    if "sample" in report:
        click.echo(f"  sample (base + LoRA | tuned): {report['sample']}")
