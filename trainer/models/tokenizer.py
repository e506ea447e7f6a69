"""The CLIP tokenizer for SD 1.x / 2.x, offline: transformers' ``CLIPTokenizer`` over the folder that
``curator.captions.tokenizer.clip_tokenizer_dir`` builds from the BPE vocabulary inside the open-clip-torch wheel (so caption
token counts in ``curator`` and the trainer's tokenization are the same by construction).

Example::

    tok = load_clip_tokenizer("sd1")
    tok("a photo of sks dog").input_ids[:3]      # [49406, 320, 1125]
"""

from __future__ import annotations

from typing import Any

from trainer.models.errors import ModelError


def load_clip_tokenizer(family: str = "sd1") -> Any:
    """A ``CLIPTokenizer`` for SD 1.x (pads with ``<|endoftext|>``) or SD 2.x (pads with ``!``, id 0, as OpenCLIP)."""
    from transformers import CLIPTokenizer

    from curator.captions.tokenizer import TokenizerUnavailable, clip_tokenizer_dir

    try:
        folder = clip_tokenizer_dir()
    except TokenizerUnavailable as exc:
        raise ModelError(str(exc)) from exc
    kwargs: dict[str, Any] = {"pad_token": "!"} if family == "sd2" else {}
    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True, **kwargs)
