"""Sample images at save points: a StableDiffusionPipeline built from the in-memory components being trained.

Prompts are encoded with our own text code (``trainer.text``), so samples see the same clip skip and long-caption
chunking as training (and diffusers' own clip-skip path does not know transformers 5's CLIP layout).

Example::

    paths = render_samples(model, ["a photo of sks dog"], out_dir, "model-000040", steps=20, size=(512, 512),
                           seed=42, sampler="ddim")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}


def make_sampler(name: str, noise_scheduler: Any) -> Any:
    """A sampling scheduler configured like the model's training scheduler."""
    import diffusers

    cls = getattr(diffusers, SAMPLERS[name])
    return cls.from_config(noise_scheduler.config)


def render_samples(
    model: Any,
    prompts: list[str],
    out_dir: Path,
    stem: str,
    *,
    steps: int,
    size: tuple[int, int],
    seed: int,
    sampler: str,
    clip_skip: int = 1,
    max_token_length: int = 75,
    device: Any = None,
    autocast: Any = None,
) -> list[Path]:
    """Render one PNG per prompt into ``out_dir`` (atomically); returns the paths. Models are put in eval mode for
    the duration and restored afterwards."""
    import contextlib
    import io

    import torch
    from diffusers import StableDiffusionPipeline

    from curator.fsutil import atomic_write_bytes
    from trainer.text import encode, tokenize

    out_dir.mkdir(parents=True, exist_ok=True)
    modes = {m: m.training for m in (model.unet, model.text_encoder, model.vae)}
    for module in modes:
        module.eval()
    pipe: Any = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=make_sampler(sampler, model.noise_scheduler),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    paths = []
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            negative = encode(
                model.text_encoder, tokenize(model.tokenizer, [""], max_token_length), clip_skip
            )
            for index, prompt in enumerate(prompts):
                embeds = encode(
                    model.text_encoder, tokenize(model.tokenizer, [prompt], max_token_length), clip_skip
                )
                generator = torch.Generator(device="cpu").manual_seed(seed + index)
                image = pipe(
                    prompt_embeds=embeds,
                    negative_prompt_embeds=negative,
                    num_inference_steps=steps,
                    width=size[0],
                    height=size[1],
                    generator=generator,
                ).images[0]
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                path = out_dir / f"{stem}_{index:02d}.png"
                atomic_write_bytes(path, buffer.getvalue())
                paths.append(path)
    finally:
        for module, was_training in modes.items():
            module.train(was_training)
    return paths
