"""What SDXL adds to a training step: size and crop conditioning, and the two-encoder text path.

Size and crop conditioning (the six "time ids"): original height / width, crop top / left, target height / width,
as Kohya sd-scripts computes them per image (``BucketManager.get_crop_ltrb``, following Stability AI's
preprocessing): the original is the image's size as loaded, the target is the bucket, and the crop's top-left is
where the image would sit if it were scaled to FIT inside the bucket and centred (not the pixels the cover-and-crop
resize cut off). The UNet embeds each number with 256 sinusoidal channels (diffusers' ``add_time_proj``, the same
embedding as Kohya's ``get_size_embeddings``).

Text: both encoders see the caption (each with its own tokenizer; long captions in 75-token windows as
``trainer.text``); the UNet gets both penultimate hidden states side by side (768 + 1280 = 2048 wide), and the
added embedding gets the second encoder's pooled, projected output of the first window (as Kohya).

Example::

    size_conditioning(original=(1000, 750), bucket=(1152, 896))   # (750, 1000, 0, 2, 896, 1152)
    states, pooled = encode_captions((tok1, tok2), (text1, text2), captions, max_token_length=75)
    prediction = unet(noisy, timesteps, states, added_cond_kwargs=added_conditions(pooled, samples)).sample
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def crop_top_left(original: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    """Kohya's crop (top, left) of an image of ``original`` (width, height) in ``bucket`` (width, height)."""
    bucket_w, bucket_h = bucket
    image_ar = original[0] / original[1]
    if bucket_w / bucket_h > image_ar:  # the bucket is wider: fit the height
        fit_w, fit_h = bucket_h * image_ar, float(bucket_h)
    else:
        fit_w, fit_h = float(bucket_w), bucket_w / image_ar
    return int((bucket_h - fit_h) // 2), int((bucket_w - fit_w) // 2)


def size_conditioning(
    original: tuple[int, int], bucket: tuple[int, int]
) -> tuple[int, int, int, int, int, int]:
    """The six numbers of one image: (original h, original w, crop top, crop left, target h, target w)."""
    top, left = crop_top_left(original, bucket)
    return original[1], original[0], top, left, bucket[1], bucket[0]


def time_ids(samples: Sequence[Any], device: Any, dtype: Any) -> Any:
    """(B, 6) size conditioning of a batch of ``trainer.data.Sample``."""
    import torch

    rows = [size_conditioning(s.original, s.bucket) for s in samples]
    return torch.tensor(rows, device=device, dtype=dtype)


def _penultimate(encoder: Any, ids: Any) -> tuple[Any, Any]:
    """Penultimate hidden states (windows joined) and the output of the encoder (for the pooled embedding)."""
    from trainer.text import join_windows

    batch, windows, width = ids.shape
    device = next(encoder.parameters()).device
    out = encoder(ids.reshape(batch * windows, width).to(device), output_hidden_states=True, return_dict=True)
    states = out.hidden_states[-2].reshape(batch, windows, width, -1)
    return join_windows(states), out


def encode_captions(
    tokenizers: tuple[Any, Any], encoders: tuple[Any, Any], captions: list[str], max_token_length: int
) -> tuple[Any, Any]:
    """(hidden states (B, L, 768 + 1280), pooled (B, 1280)) of captions through both text encoders."""
    import torch

    from trainer.text import tokenize

    ids1 = tokenize(tokenizers[0], captions, max_token_length)
    ids2 = tokenize(tokenizers[1], captions, max_token_length)
    states1, _ = _penultimate(encoders[0], ids1)
    states2, out2 = _penultimate(encoders[1], ids2)
    pooled = out2.text_embeds.reshape(ids2.shape[0], ids2.shape[1], -1)[:, 0]
    return torch.cat([states1, states2.to(states1.dtype)], dim=-1), pooled


def added_conditions(pooled: Any, samples: Sequence[Any]) -> dict[str, Any]:
    """diffusers' ``added_cond_kwargs`` for a batch: the pooled text embedding and the size conditioning."""
    return {"text_embeds": pooled, "time_ids": time_ids(samples, pooled.device, pooled.dtype)}


class TextCache:
    """Both encoders' outputs per caption text, computed once with the frozen encoders (Kohya's
    ``cache_text_encoder_outputs``); the encoders can then leave the GPU.

    Example::

        cache = TextCache.build(model, captions, max_token_length=75)
        states, pooled = cache.batch(["a photo of sks dog"], device)
    """

    def __init__(self, entries: dict[str, tuple[Any, Any]]) -> None:
        self.entries = entries

    @classmethod
    def build(cls, model: Any, captions: Sequence[str], max_token_length: int, chunk: int = 8) -> TextCache:
        """Encode every distinct caption (in chunks of ``chunk``) under no_grad; stored on the CPU."""
        import torch

        distinct = sorted(set(captions))
        entries: dict[str, tuple[Any, Any]] = {}
        pairs = (model.tokenizer, model.tokenizer_2), (model.text_encoder, model.text_encoder_2)
        with torch.no_grad():
            for start in range(0, len(distinct), chunk):
                part = distinct[start : start + chunk]
                states, pooled = encode_captions(*pairs, part, max_token_length)
                for text, s, p in zip(part, states, pooled, strict=True):
                    entries[text] = (s.cpu(), p.cpu())
        return cls(entries)

    def batch(self, captions: list[str], device: Any) -> tuple[Any, Any]:
        """Stacked (states, pooled) of a batch's captions on ``device``."""
        import torch

        rows = [self.entries[c] for c in captions]
        return (
            torch.stack([r[0] for r in rows]).to(device),
            torch.stack([r[1] for r in rows]).to(device),
        )


# ---- the training loop's SDXL set-up --------------------------------------------------------------------------


def text_learning_rates(config: Any) -> tuple[float, float]:
    """Learning rates of text encoders 1 and 2 (Kohya: unset = learning_rate; 0 = that encoder stays frozen)."""
    return tuple(  # type: ignore[return-value]
        config.learning_rate if lr is None else lr
        for lr in (config.learning_rate_te1, config.learning_rate_te2)
    )


def setup_text_encoders(model: Any, config: Any, allowed: bool, weight_dtype: Any) -> tuple[bool, bool]:
    """Which encoders train (``train_text_encoder``, each with a non-zero rate, while the schedule allows it);
    sets their gradients, modes, gradient checkpointing and dtype (``weight_dtype``: full_fp16 / full_bf16's, or
    None). Returns (encoder 1 trains, encoder 2 trains)."""
    rates = text_learning_rates(config)
    flags = tuple(allowed and config.train_text_encoder and rate > 0 for rate in rates)
    for module, trains in zip((model.text_encoder, model.text_encoder_2), flags, strict=True):
        module.requires_grad_(trains)
        module.train(trains)
        if trains and weight_dtype is not None:
            # frozen ones stay float32: casting them would round the weights the checkpoint writes back
            module.to(weight_dtype)
        if trains and config.gradient_checkpointing:
            enable = getattr(module, "activation_checkpointing_enable", None)  # transformers 5's name
            (enable or module.gradient_checkpointing_enable)()
    return flags[0], flags[1]


def build_text_cache(model: Any, data: Any, config: Any, device: Any) -> TextCache:
    """Kohya's cached text-encoder outputs: every image's caption (fixed: no shuffling, no dropout) encoded once;
    the encoders then go to the CPU."""
    import random

    from curator.captions.parse import process_caption
    from trainer.data import caption_options, item_caption

    options = caption_options(config)
    captions = [
        process_caption(item_caption(s.item), options, random.Random(0)) for s in data.samples.values()
    ]
    for module in (model.text_encoder, model.text_encoder_2):
        module.to(device)
    cache = TextCache.build(model, captions, config.max_token_length)
    for module in (model.text_encoder, model.text_encoder_2):
        module.to("cpu")
    return cache


def prepare(
    accelerator: Any, model: Any, flags: tuple[bool, bool], optimizer: Any, cached: bool
) -> tuple[Any, ...]:
    """accelerate's prepare for the UNet, the training encoders and the optimizer; frozen encoders go to the device
    (or stay on the CPU when their outputs are cached). Returns (unet, text_encoder, text_encoder_2, optimizer)."""
    trained = [m for m, f in zip((model.text_encoder, model.text_encoder_2), flags, strict=True) if f]
    prepared = list(accelerator.prepare(model.unet, *trained, optimizer))
    unet, optimizer = prepared[0], prepared[-1]
    encoders = iter(prepared[1:-1])
    out = []
    for module, trains in zip((model.text_encoder, model.text_encoder_2), flags, strict=True):
        out.append(next(encoders) if trains else module if cached else module.to(accelerator.device))
    return unet, out[0], out[1], optimizer


def batch_conditioning(run: Any, batch: Any, captions: list[str]) -> dict[str, Any]:
    """The UNet's conditioning kwargs of one batch: hidden states and the added (pooled + size) embedding."""
    import torch

    device = run.accelerator.device
    if run.text_cache is not None:
        states, pooled = run.text_cache.batch(captions, device)
    else:
        tokenizers = (run.model.tokenizer, run.model.tokenizer_2)
        with torch.set_grad_enabled(run.te_training):
            states, pooled = encode_captions(
                tokenizers, (run.text_encoder, run.text_encoder_2), captions, run.config.max_token_length
            )
    return {"encoder_hidden_states": states, "added_cond_kwargs": added_conditions(pooled, batch.samples)}
