"""``dreamcurate model``: ``info``, ``convert`` and ``tiny``. Importing this module stays light (click only); torch,
diffusers and transformers are imported inside the commands that need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trainer.models.errors import ModelError

PRECISION = click.Choice(["float", "fp16", "bf16"])


@click.group()
def model() -> None:
    """Model files: info, convert, tiny (SD 1.x / 2.x / SDXL; nothing is downloaded)."""


def _human(n: int) -> str:
    return f"{n / 1e6:,.1f} M" if n < 1e9 else f"{n / 1e9:,.2f} B"


def _print_info(info: dict[str, Any]) -> None:
    params = info["parameters"]
    click.echo(f"{info['path']}")
    click.echo(f"  family        {info['family_name']} ({info['family']}), {info['format']}")
    click.echo(f"  precision     {info['precision']}")
    for name in ("unet", "text_encoder", "text_encoder_2", "vae", "ema", "other"):
        if params.get(name):
            click.echo(f"  {name + ' ':<14}{_human(params[name])} parameters")
    click.echo(f"  EMA           {'present' if info['ema'] else 'none'}")
    click.echo(f"  v-pred        {info['v_parameterization']}")
    trains = info["trains"]
    if trains.get("text_encoder_2"):
        te = (
            f"text encoders {_human(trains['text_encoder'])} + {_human(trains['text_encoder_2'])} only with "
            "train_text_encoder (off by default)"
        )
    else:
        te = f"text encoder {_human(trains['text_encoder'])} (until the stop step)"
    click.echo(f"  trains        UNet {_human(trains['unet'])} + {te}; VAE frozen")
    ours = {k: v for k, v in info.get("metadata", {}).items() if not k.startswith("dreamcurate.architecture")}
    for key in sorted(ours)[:20]:
        click.echo(f"  meta          {key} = {ours[key][:80]}")
    for note in info["notes"]:
        click.echo(f"  note          {note}")


@model.command(short_help="Family, parameters, precision, EMA; --json.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(path: Path, as_json: bool) -> None:
    """Family, parameters per component, precision, EMA and what training would change."""
    from trainer.models.info import inspect_model

    try:
        details = inspect_model(path)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(details, indent=2, sort_keys=True))
    else:
        _print_info(details)


@model.command(short_help="Convert to fp16/bf16/float, single file or diffusers folder.")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--precision", type=PRECISION, default="fp16", show_default=True, help="Precision of the written weights."
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["single-file", "diffusers"]),
    default=None,
    help="Output layout [default: single-file for a .safetensors OUT, else diffusers].",
)
@click.option(
    "--vae", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Bake in this VAE file."
)
@click.option(
    "--v-parameterization",
    is_flag=True,
    help="The model predicts v (SD 2.x 768-v, NoobAI-style SDXL); recorded in the file.",
)
@click.option("--use-ema", is_flag=True, help="Write the EMA UNet weights (when the source has them).")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing OUT, if it is a model file (.safetensors/.ckpt) or a diffusers model folder.",
)
def convert(
    src: Path,
    out: Path,
    precision: str,
    target: str | None,
    vae: Path | None,
    v_parameterization: bool,
    use_ema: bool,
    force: bool,
) -> None:
    """Convert SRC (single file, .ckpt or diffusers folder) to OUT; the original is never modified, and an
    existing OUT is replaced only with --force and only when it is a model."""
    from trainer.models.io import check_output_target, load_model, save_diffusers, save_single_file

    target = target or ("single-file" if out.suffix.lower() == ".safetensors" else "diffusers")
    _check_inputs_outside(out, src, vae)
    try:
        check_output_target(out, target, force)  # before loading gigabytes of weights
        loaded = load_model(src, vae=vae, v_parameterization=v_parameterization, use_ema=use_ema)
        if target == "single-file":
            save_single_file(
                loaded, out, precision, {"dreamcurate.converted_from": src.name}, overwrite=force
            )
        else:
            save_diffusers(loaded, out, precision, overwrite=force)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} ({loaded.family}, {precision}, {target})")


def _check_inputs_outside(out: Path, src: Path, vae: Path | None) -> None:
    """OUT may not be, or hold, a file the conversion reads: replacing OUT would delete the original."""
    target = out.resolve()
    for given in (src, vae):
        if given is None:
            continue
        source = given.resolve()
        if source == target or target in source.parents:
            raise click.BadParameter(f"OUT must not be or contain {given}", param_hint="OUT")


@model.command(short_help="Write the tiny random-weight model.")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--family", type=click.Choice(["sd1", "sd2", "sdxl"]), default="sd1", show_default=True, help="Topology."
)
@click.option(
    "--diffusers", "as_diffusers", is_flag=True, help="Write a diffusers folder instead of a single file."
)
@click.option("--force", is_flag=True, help="Replace an existing OUT, if it is a model.")
def tiny(out: Path, family: str, as_diffusers: bool, force: bool) -> None:
    """Write the tiny random-weight model (SD topology, narrow) to try the whole pipeline in minutes."""
    from trainer.models.tiny import write_tiny_diffusers, write_tiny_model

    try:
        if as_diffusers:
            write_tiny_diffusers(out, family, overwrite=force)
        elif out.suffix.lower() != ".safetensors":
            raise click.BadParameter("OUT must end in .safetensors (or use --diffusers)", param_hint="OUT")
        else:
            write_tiny_model(out, family, overwrite=force)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} (tiny {family}, random weights)")
