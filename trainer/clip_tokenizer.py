"""The CLIP tokenizer, offline. Prefer the project's shared folder (``curator.tokenizer.clip_tokenizer_dir``); when
that module is absent, build the same files here from the BPE vocabulary shipped inside the open-clip-torch wheel
(identical to OpenAI CLIP's, hence SD 1.x's).

Example::

    tok = load_clip_tokenizer("sd1")
    tok("a photo of sks dog").input_ids[:3]
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from curator.fsutil import atomic_write_text

#: OpenAI CLIP's merge count: 49152 - 256 - 2 lines after the header.
_N_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable character table (the BPE works on these characters)."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    visible += list(range(ord("®"), ord("ÿ") + 1))
    chars = visible[:]
    extra = 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, (chr(c) for c in chars), strict=True))


def _bpe_file() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open-clip-torch is not installed; it carries the CLIP BPE vocabulary")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def write_clip_tokenizer_files(folder: Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config for CLIPTokenizer into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(_bpe_file()).read().decode("utf-8").split("\n")[1 : _N_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    base = list(_bytes_to_unicode().values())
    vocab = base + [b + "</w>" for b in base] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    atomic_write_text(
        folder / "merges.txt", "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    )
    atomic_write_text(folder / "vocab.json", json.dumps({tok: i for i, tok in enumerate(vocab)}))
    config = {
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(config, indent=1))
    return folder


def tokenizer_dir() -> Path:
    """The folder CLIPTokenizer loads from: the shared curator one if present, else our cached copy."""
    try:
        from curator.tokenizer import clip_tokenizer_dir  # type: ignore[import-not-found]
    except ImportError:
        cache = (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dreamcurate" / "clip_tokenizer"
        )
        if not (cache / "vocab.json").is_file():
            write_clip_tokenizer_files(cache)
        return cache
    return Path(clip_tokenizer_dir())


def load_clip_tokenizer(family: str = "sd1") -> Any:
    """A ``CLIPTokenizer`` for SD 1.x (pad ``<|endoftext|>``) or SD 2.x (pad ``!``, as OpenCLIP pads with 0)."""
    from transformers import CLIPTokenizer

    kwargs = {"pad_token": "!"} if family == "sd2" else {}
    return CLIPTokenizer.from_pretrained(str(tokenizer_dir()), local_files_only=True, **kwargs)
