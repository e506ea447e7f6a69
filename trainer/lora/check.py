"""Proof of a LoRA file: load it onto the base model the way diffusers does (``load_lora_weights`` reads Kohya's
format, as WebUI and ComfyUI do), count the layers it applied, and compare base + LoRA with the tuned model.

Example::

    pipe = base_pipeline(load_model(base))
    keys = apply_lora(pipe, Path("sks.safetensors"))          # keys.unmatched == [] when every layer applied
    errors = compare_outputs(lora_model(base, pipe), load_model(tuned), base)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.lora.files import read_lora
from trainer.lora.targets import find_targets
from trainer.models.errors import ModelError

PROMPT = "a photo of sks dog"


@dataclass
class KeyReport:
    """How the layers of a LoRA file landed on the model: applied with the file's values, or not at all."""

    layers: int
    matched: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"layers": self.layers, "matched": len(self.matched), "unmatched": self.unmatched}


def base_pipeline(model: Any) -> Any:
    """A diffusers StableDiffusionPipeline over the loaded model's modules (nothing is downloaded)."""
    from diffusers import StableDiffusionPipeline

    pipe: Any = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=model.noise_scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _applied(module: Any, down: Any, up: Any) -> bool:
    """Whether diffusers put this layer's tensors into the module (peft layer holding equal values)."""
    import torch

    lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
    if not lora_a or lora_b is None:
        return False
    for name in lora_a:
        a, b = lora_a[name].weight, lora_b[name].weight
        if a.shape == down.shape and b.shape == up.shape:
            if torch.allclose(a.float().cpu(), down, atol=1e-6) and torch.allclose(
                b.float().cpu(), up, atol=1e-6
            ):
                return True
    return False


def apply_lora(pipe: Any, path: Path, family: str | None = None) -> KeyReport:
    """``pipe.load_lora_weights(path)``, then every layer of the file looked up in the UNet and the text encoder:
    matched when a peft layer there holds the file's tensors. ``family`` (the base's): refuse a file whose metadata
    names another."""
    tensors, metadata = read_lora(path)
    _check_fits(pipe, tensors, metadata, path, family)
    try:
        pipe.load_lora_weights(str(path))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(
            f"{path}: diffusers' load_lora_weights refused it ({str(exc).splitlines()[0]})"
        ) from exc
    roots = {"unet": pipe.unet, "te": pipe.text_encoder}
    by_name = {t.name: t for t in find_targets(pipe.unet, pipe.text_encoder, conv=True)}
    names = sorted({key.split(".", 1)[0] for key in tensors})
    report = KeyReport(len(names))
    for name in names:
        target = by_name.get(name)
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        if target and _applied(roots[target.part].get_submodule(target.path), down, up):
            report.matched.append(name)
        else:
            report.unmatched.append(name)
    return report


def _check_fits(
    pipe: Any, tensors: dict[str, Any], metadata: dict[str, str], path: Path, family: str | None
) -> None:
    """ModelError when the file is for another family or its layers do not fit the base's (before diffusers, whose
    own error on a shape mismatch is a long traceback)."""
    from trainer.lora.files import base_model_version

    version = metadata.get("ss_base_model_version", "")
    ours = base_model_version(family, False) if family else ""
    if ours and version.startswith(("sd_v1", "sd_v2")) and not version.startswith(ours):
        raise ModelError(f"{path}: a LoRA for {version}, the base model is {ours}")
    by_name = {t.name: t for t in find_targets(pipe.unet, pipe.text_encoder, conv=True)}
    for key, tensor in tensors.items():
        name = key.split(".", 1)[0]
        target = by_name.get(name)
        if target is None or not key.endswith("lora_down.weight"):
            continue
        if (
            tuple(tensor.shape[1:]) != tuple(target.shape[1:])
            or tensors[f"{name}.lora_up.weight"].shape[0] != target.shape[0]
        ):
            raise ModelError(
                f"{path}: layer {name} does not fit the base model ({tuple(tensor.shape)} against the base's "
                f"{tuple(target.shape)}): a LoRA for another model?"
            )


def lora_model(base: Any, pipe: Any) -> Any:
    """The base SDModel with the pipeline's (LoRA-carrying) UNet and text encoder."""
    return dataclasses.replace(base, unet=pipe.unet, text_encoder=pipe.text_encoder)


def _relative(a: Any, b: Any) -> float:
    import torch

    norm = float(torch.linalg.norm(b.float()))
    return float(torch.linalg.norm(a.float() - b.float())) / (norm or 1.0)


def fixed_outputs(model: Any, states: Any | None = None, seed: int = 0) -> tuple[Any, Any]:
    """The text encoder's hidden states for a fixed prompt and the UNet's prediction for fixed latents, timestep and
    (given, or its own) text states."""
    import torch

    from trainer.text import encode, tokenize

    ids = tokenize(model.tokenizer, [PROMPT], 75)
    side = int(model.unet.config.sample_size)
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, int(model.unet.config.in_channels), side, side, generator=generator)
    with torch.no_grad():
        text = encode(model.text_encoder, ids, 1)
        prediction = model.unet(latents, torch.tensor([500]), text if states is None else states).sample
    return text, prediction


def compare_outputs(with_lora: Any, tuned: Any, base: Any) -> dict[str, float]:
    """Relative errors of base + LoRA against the tuned model on fixed inputs: the text encoder's output, the UNet's
    prediction (both UNets fed the tuned text states, so the UNet is judged alone), each also as a share of how far
    the tuned model moved from the base (``*_of_change``: 0 = the LoRA carries the whole change, 1 = none of it)."""
    tuned_text, tuned_pred = fixed_outputs(tuned)
    lora_text, _ = fixed_outputs(with_lora)
    _, lora_pred = fixed_outputs(with_lora, states=tuned_text)
    base_text, _ = fixed_outputs(base)
    _, base_pred = fixed_outputs(base, states=tuned_text)
    te_change = _relative(base_text, tuned_text)
    unet_change = _relative(base_pred, tuned_pred)
    te_error, unet_error = _relative(lora_text, tuned_text), _relative(lora_pred, tuned_pred)
    return {
        "text_encoder": te_error,
        "unet": unet_error,
        "text_encoder_of_change": te_error / te_change if te_change else 0.0,
        "unet_of_change": unet_error / unet_change if unet_change else 0.0,
    }


def side_by_side(with_lora: Any, tuned: Any, out_dir: Path, stem: str, seed: int, steps: int) -> Path:
    """The same prompt and seed rendered by base + LoRA (left) and the tuned model (right), one PNG."""
    import io
    import tempfile

    from PIL import Image

    from curator.fsutil import atomic_write_bytes
    from trainer.sampling import render_samples

    side = int(with_lora.unet.config.sample_size) * 8
    with tempfile.TemporaryDirectory() as tmp:
        left, right = (
            render_samples(
                m, [PROMPT], Path(tmp), name, steps=steps, size=(side, side), seed=seed, sampler="ddim"
            )[0]
            for m, name in ((with_lora, "lora"), (tuned, "tuned"))
        )
        with Image.open(left) as a, Image.open(right) as b:
            sheet = Image.new("RGB", (a.width + b.width, max(a.height, b.height)))
            sheet.paste(a, (0, 0))
            sheet.paste(b, (a.width, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    path = out_dir / "samples" / f"{stem}-lora-vs-tuned.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
