"""Sample images at save points: a StableDiffusionPipeline built from the in-memory components being trained.

Prompts are encoded with our own text code (``trainer.text``), so samples see the same clip skip and long-caption
chunking as training (and diffusers' own clip-skip path does not know transformers 5's CLIP layout).

Example::

    paths = render_samples(model, ["a photo of sks dog"], out_dir, "model-000040", steps=20, size=(512, 512),
                           seed=42, sampler="ddim")

A prompt may also be a :class:`curator.settings.prompts.SamplePrompt`, whose own negative prompt, size, seed, steps
and guidance scale win over the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curator.settings.prompts import SamplePrompt

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
    prompts: Sequence[str | SamplePrompt],
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
    the duration and restored afterwards. Prompt ``i`` uses seed ``seed + i`` unless it names its own."""
    import contextlib
    import io

    import torch
    from diffusers import StableDiffusionPipeline

    from curator.fsutil import atomic_write_bytes
    from trainer.text import encode, tokenize

    out_dir.mkdir(parents=True, exist_ok=True)
    encoders = [m for m in (model.text_encoder, getattr(model, "text_encoder_2", None)) if m is not None]
    modes = {m: m.training for m in (model.unet, model.vae, *encoders)}
    for module in modes:
        module.eval()
    if model.family == "sdxl":
        pipe, embed = _sdxl_pipeline(model, sampler, max_token_length)
    else:
        pipe = StableDiffusionPipeline(
            vae=model.vae,
            text_encoder=model.text_encoder,
            tokenizer=model.tokenizer,
            unet=model.unet,
            scheduler=make_sampler(sampler, model.noise_scheduler),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )

        def embed(text: str) -> dict[str, Any]:
            ids = tokenize(model.tokenizer, [text], max_token_length)
            return {"prompt_embeds": encode(model.text_encoder, ids, clip_skip)}

    pipe.set_progress_bar_config(disable=True)

    paths = []
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            for index, entry in enumerate(prompts):
                sample = entry if isinstance(entry, SamplePrompt) else SamplePrompt(entry)
                generator = torch.Generator(device="cpu").manual_seed(
                    seed + index if sample.seed is None else sample.seed
                )
                negative = {f"negative_{k}": v for k, v in embed(sample.negative).items()}
                image = pipe(
                    **embed(sample.prompt),
                    **negative,
                    num_inference_steps=sample.steps or steps,
                    width=sample.width or size[0],
                    height=sample.height or size[1],
                    guidance_scale=7.5 if sample.scale is None else sample.scale,
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


def _sdxl_pipeline(model: Any, sampler: str, max_token_length: int) -> tuple[Any, Any]:
    """StableDiffusionXLPipeline over the in-memory modules, and the prompt encoder training uses (both encoders'
    penultimate states, the second's pooled output)."""
    from diffusers import StableDiffusionXLPipeline

    from trainer.sdxl import encode_captions

    pipe = StableDiffusionXLPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        text_encoder_2=model.text_encoder_2,
        tokenizer=model.tokenizer,
        tokenizer_2=model.tokenizer_2,
        unet=model.unet,
        scheduler=make_sampler(sampler, model.noise_scheduler),
        add_watermarker=False,
    )
    tokenizers, encoders = (model.tokenizer, model.tokenizer_2), (model.text_encoder, model.text_encoder_2)

    def embed(text: str) -> dict[str, Any]:
        states, pooled = encode_captions(tokenizers, encoders, [text], max_token_length)
        return {"prompt_embeds": states, "pooled_prompt_embeds": pooled}

    return pipe, embed
