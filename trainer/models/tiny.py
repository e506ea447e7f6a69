"""A tiny Stable Diffusion model with SD 1.x's topology and random weights, for the demo and the tests (SD 2.x and
SDXL variants too: ``tiny_configs("sdxl")`` has SDXL's topology, both text encoders, narrow widths).

Same layout as SD 1.x (UNet: four levels, three cross-attention down blocks and one plain, two layers per block;
VAE: four levels, two layers per block; CLIP text encoder with the real 49408-token vocabulary and 77 positions), only
narrower, so every LDM <-> diffusers key path is exercised. Weights are seeded: the same call writes the same file.
It trains at about 0.2 s a step on 2 CPU cores at 128 px, batch 2, and learns nothing useful: it proves the pipeline.

Example::

    path = write_tiny_model(Path("tiny.safetensors"))
    model = load_model(path)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.models.arch import Architecture, _text, _unet, _vae

TINY_SEED = 1234


def tiny_configs(family: str = "sd1") -> Architecture:
    """The tiny model's architecture: widths 32/32/64/64, text width 32 with 2 layers (SD 2 variant: 3 in the file,
    the last unused, as in real SD 2), 128 px images (16 px latents)."""
    if family == "sd1":
        return Architecture(
            family="sd1",
            unet=_unet([32, 32, 64, 64], 32, 8, False, 16),
            vae=_vae([32, 32, 64, 64], 128),
            text_encoder=_text(32, 2, 4, 64, "quick_gelu", 32),
            ldm_text_layers=2,
        )
    if family == "sd2":
        return Architecture(
            family="sd2",
            unet=_unet([32, 32, 64, 64], 32, [2, 2, 4, 4], True, 16),
            vae=_vae([32, 32, 64, 64], 128),
            text_encoder=_text(32, 2, 2, 64, "gelu", 32),
            ldm_text_layers=3,
        )
    if family == "sdxl":
        from trainer.models.sdxl_arch import tiny_sdxl_architecture

        return tiny_sdxl_architecture()
    raise ValueError(f"unknown family {family!r} (sd1, sd2 or sdxl)")


def build_random_model(
    arch: Architecture, seed: int = TINY_SEED, v_parameterization: bool = False, tokenizer: bool = True
) -> Any:
    """An ``SDModel`` of ``arch`` with seeded random weights (no file, no download). ``tokenizer`` False: none
    (writing the file needs none, and loading it takes a second)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.io import SDModel, make_noise_scheduler
    from trainer.models.tokenizer import load_clip_tokenizer

    torch.manual_seed(seed)
    unet: Any = UNet2DConditionModel(**arch.unet)
    vae: Any = AutoencoderKL(**arch.vae)
    text = CLIPTextModel(CLIPTextConfig(**arch.text_encoder))
    text2 = (
        CLIPTextModelWithProjection(CLIPTextConfig(**arch.text_encoder_2)) if arch.text_encoder_2 else None
    )
    for module in (unet, vae, text, text2):
        if module is not None:
            module.eval()
    return SDModel(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=load_clip_tokenizer(arch.family) if tokenizer else None,
        noise_scheduler=make_noise_scheduler(v_parameterization),
        family=arch.family,
        v_parameterization=v_parameterization,
        architecture=arch,
        text_encoder_2=text2,
        tokenizer_2=load_clip_tokenizer("sd2") if text2 is not None else None,
    )


def write_tiny_model(path: Path, family: str = "sd1", seed: int = TINY_SEED, overwrite: bool = True) -> Path:
    """Write the tiny model as a single-file LDM ``.safetensors`` (float) at ``path``; returns ``path``.
    ``overwrite``: replace an existing model file there (never anything else)."""
    from trainer.models.io import save_single_file

    model = build_random_model(tiny_configs(family), seed, tokenizer=False)
    return save_single_file(model, Path(path), "float", {"dreamcurate.tiny": "true"}, overwrite=overwrite)


def write_tiny_diffusers(
    folder: Path, family: str = "sd1", seed: int = TINY_SEED, overwrite: bool = True
) -> Path:
    """Write the same tiny model as a diffusers folder; returns ``folder``. ``overwrite``: replace an existing
    diffusers model folder there (never a folder without model_index.json)."""
    from trainer.models.io import save_diffusers

    model = build_random_model(tiny_configs(family), seed)
    return save_diffusers(model, Path(folder), "float", overwrite=overwrite)
