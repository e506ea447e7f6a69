"""Captions -> CLIP conditioning, as Kohya sd-scripts does it: long captions in 75-token chunks, clip skip.

``max_token_length`` 150 or 225 tokenizes a caption to that many tokens and encodes it as 2 or 3 windows of
BOS + 75 tokens + EOS; the windows' hidden states are joined (one BOS first, one EOS last), so the UNet sees
``max_token_length + 2`` positions.

Example::

    ids = tokenize(tokenizer, ["a photo of sks dog"], max_token_length=150)   # (1, 2, 77)
    states = encode(text_encoder, ids, clip_skip=1)                           # (1, 152, dim)
"""

from __future__ import annotations

from typing import Any


def tokenize(tokenizer: Any, captions: list[str], max_token_length: int = 75) -> Any:
    """Token ids of shape (batch, chunks, model_max_length)."""
    import torch

    window = tokenizer.model_max_length  # 77: BOS + 75 + EOS
    full = tokenizer(
        captions, padding="max_length", truncation=True, max_length=max_token_length + 2, return_tensors="pt"
    ).input_ids
    if max_token_length + 2 == window:
        return full.unsqueeze(1)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    chunks = []
    for start in range(1, max_token_length + 1, window - 2):
        middle = full[:, start : start + window - 2]
        chunk = torch.cat([full[:, :1], middle, full[:, -1:]], dim=1)
        for row in chunk:
            # Each window must end with EOS when it holds text (SD 2.x pads with "!" instead of EOS), and an
            # all-padding window starts with EOS, as Kohya does.
            if row[-2] not in (eos, pad):
                row[-1] = eos
            if row[1] == pad:
                row[1] = eos
        chunk[:, 0] = bos
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def encode(text_encoder: Any, input_ids: Any, clip_skip: int = 1) -> Any:
    """Hidden states (batch, chunks * 75 + 2, dim) for ids from :func:`tokenize`."""
    batch, n_chunks, window = input_ids.shape
    device = next(text_encoder.parameters()).device
    flat = input_ids.reshape(batch * n_chunks, window).to(device)
    if clip_skip <= 1:
        states = text_encoder(flat, return_dict=True).last_hidden_state
    else:
        out = text_encoder(flat, output_hidden_states=True, return_dict=True)
        states = text_model(text_encoder).final_layer_norm(out.hidden_states[-clip_skip])
    return join_windows(states.reshape(batch, n_chunks, window, -1))


def join_windows(states: Any) -> Any:
    """(batch, windows, 77, dim) hidden states -> (batch, windows * 75 + 2, dim): one BOS first, every window's 75
    tokens, one EOS last (Kohya's joining of long captions)."""
    import torch

    n_chunks = states.shape[1]
    if n_chunks == 1:
        return states[:, 0]
    parts = [states[:, 0, :1]] + [states[:, i, 1:-1] for i in range(n_chunks)] + [states[:, -1, -1:]]
    return torch.cat(parts, dim=1)


def text_model(text_encoder: Any) -> Any:
    """The CLIP text transformer inside ``text_encoder``, through a DDP wrapper (``.module``) when it is prepared for
    several processes (transformers 5 dropped the ``text_model`` wrapper; 4.x still has it)."""
    inner = getattr(text_encoder, "module", text_encoder)
    return getattr(inner, "text_model", inner)


def freeze_skipped_layers(text_encoder: Any, clip_skip: int) -> None:
    """Freeze the top ``clip_skip - 1`` transformer layers: their output is never used, so they get no gradient, and
    DDP refuses parameters that take part in the forward pass without one. Their weights stay as loaded either way
    (AdamW skips parameters without a gradient), so this changes no number."""
    if clip_skip > 1:
        for layer in text_model(text_encoder).encoder.layers[-(clip_skip - 1) :]:
            layer.requires_grad_(False)
