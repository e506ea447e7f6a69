"""The offline CLIP tokenizer: built from the BPE vocabulary that ships inside the open-clip-torch wheel.

OpenAI CLIP's vocabulary (``bpe_simple_vocab_16e6.txt.gz``) is the one Stable Diffusion 1.x (and, with a different
padding token, SD 2.x's OpenCLIP text encoder) uses. We find the file without importing ``open_clip`` or torch, turn it
once into a Hugging Face tokenizer folder (``vocab.json``, ``merges.txt``, ``tokenizer.json`` and the special-token
configs) in a user cache folder, and count tokens with the light ``tokenizers`` package, using the very pipeline
transformers' ``CLIPTokenizer`` builds (NFC, whitespace collapse, lowercase, CLIP's split regex, byte-level BPE with
``</w>`` word ends). So our counts are the trainer's counts by construction; a test checks it on tricky captions.

Example::

    >>> encode("a photo of a cat")
    [49406, 320, 1125, 539, 320, 2368, 49407]
    >>> count_tokens("a photo of a cat")  # without the start / end tokens
    5

The trainer loads the folder with ``transformers.CLIPTokenizer.from_pretrained(clip_tokenizer_dir())``.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from array import array
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

VOCAB_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
BOS_ID = 49406
EOS_ID = 49407
VOCAB_SIZE = 49408
#: tokens of one CLIP chunk, without its start and end token (the text encoder sees 77 = 75 + 2)
CHUNK_TOKENS = 75
#: bump when the folder's content changes, so older caches are rebuilt
FORMAT_VERSION = 1
# CLIP's pre-tokenizer split, exactly as transformers' CLIPTokenizer writes it (special tokens, contractions,
# runs of letters, single digits, runs of other non-space characters).
_SPLIT_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


class TokenizerUnavailable(RuntimeError):
    """The CLIP vocabulary file could not be found (open-clip-torch is not installed)."""


def find_bpe_vocab() -> Path:
    """The path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed open-clip-torch, without importing it.

    ``DREAMCURATE_CLIP_VOCAB`` may point at a copy of the file instead.
    """
    override = os.environ.get("DREAMCURATE_CLIP_VOCAB")
    if override:
        path = Path(override)
        if path.is_file():
            return path
        raise TokenizerUnavailable(f"DREAMCURATE_CLIP_VOCAB points at {path}, which is not a file")
    # find_spec on a top-level name locates the package without executing its __init__ (no torch import).
    spec = importlib.util.find_spec("open_clip")
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidate = Path(location) / VOCAB_FILENAME
            if candidate.is_file():
                return candidate
    try:
        dist = importlib.metadata.distribution("open-clip-torch")
        for file in dist.files or []:
            if file.name == VOCAB_FILENAME:
                return Path(str(dist.locate_file(file)))
    except importlib.metadata.PackageNotFoundError:
        pass
    raise TokenizerUnavailable(
        f"the CLIP vocabulary ({VOCAB_FILENAME}) was not found: install open-clip-torch, "
        "or set DREAMCURATE_CLIP_VOCAB to a copy of the file"
    )


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from the 256 byte values to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def read_merges(vocab_gz: Path) -> list[tuple[str, str]]:
    """The BPE merges of the vocabulary file: the 48,894 pairs OpenAI CLIP uses (header line skipped)."""
    lines = gzip.open(vocab_gz).read().decode("utf-8").split("\n")
    # OpenAI CLIP keeps 49152 - 256 - 2 merges so that the vocabulary totals 49408 with the two specials.
    merges = lines[1 : 49152 - 256 - 2 + 1]
    pairs = []
    for line in merges:
        left, right = line.split()
        pairs.append((left, right))
    return pairs


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """The token -> id table in OpenAI CLIP's order: bytes, bytes + ``</w>``, merges, then the two special tokens."""
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(pair) for pair in merges] + [BOS, EOS]
    return {token: index for index, token in enumerate(tokens)}


def cache_root() -> Path:
    """dreamcurate's user cache folder: ``$DREAMCURATE_CACHE``, else ``$XDG_CACHE_HOME/dreamcurate``, else
    ``~/.cache/dreamcurate``."""
    if os.environ.get("DREAMCURATE_CACHE"):
        return Path(os.environ["DREAMCURATE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "dreamcurate"


def _build_backend(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """The ``tokenizers`` pipeline transformers' CLIPTokenizer builds, from our vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=EOS,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing((EOS, EOS_ID), (BOS, BOS_ID), False, False)
    tok.add_special_tokens([BOS, EOS])
    return tok


def _write_folder(folder: Path, vocab_gz: Path) -> None:
    merges = read_merges(vocab_gz)
    vocab = build_vocab(merges)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n"
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")
    _build_backend(vocab, merges).save(str(folder / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CHUNK_TOKENS + 2,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "SOURCE").write_text(f"format {FORMAT_VERSION}\nbuilt from {vocab_gz}\n", encoding="utf-8")


def clip_tokenizer_dir(cache: Path | None = None) -> Path:
    """The CLIP tokenizer folder (built on first use, atomically: a temp folder renamed into place).

    Load it with ``transformers.CLIPTokenizer.from_pretrained(clip_tokenizer_dir())``.
    """
    root = Path(cache) if cache else cache_root()
    folder = root / f"clip-tokenizer-v{FORMAT_VERSION}"
    if (folder / "tokenizer.json").is_file():
        return folder
    vocab_gz = find_bpe_vocab()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip-tokenizer.", dir=root))
    try:
        _write_folder(tmp, vocab_gz)
        try:
            os.rename(tmp, folder)  # atomic; fails if a concurrent builder won the race, which is fine
        except OSError:
            if not (folder / "tokenizer.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@cache
def _backend() -> Tokenizer:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(clip_tokenizer_dir() / "tokenizer.json"))
    except OSError:
        # A read-only or full cache folder must not stop counting: build the same pipeline in memory.
        merges = read_merges(find_bpe_vocab())
        return _build_backend(build_vocab(merges), merges)


def encode(text: str) -> list[int]:
    """CLIP token ids of ``text`` with the start and end tokens, untruncated (as the trainer's tokenizer does)."""
    return list(_backend().encode(text).ids)


def encode_batch(texts: list[str]) -> list[list[int]]:
    """:func:`encode` over many texts at once (the Rust backend parallelises)."""
    return [list(e.ids) for e in _backend().encode_batch(list(texts))]


def token_starts_batch(texts: list[str]) -> list[array[int]]:
    """The character offset where each CLIP token starts (no start / end tokens), for many texts in one batched
    call: ``len`` of an entry is the text's :func:`count_tokens`, and entry ``[k]`` is :func:`cut_position` for
    ``max_tokens=k``. A compact array per text, since a dataset holds thousands of captions."""
    texts = list(texts)
    words = [
        t for t in texts if t
    ]  # an empty text has no tokens: a dataset without captions loads no tokenizer
    encodings = iter(_backend().encode_batch(words, add_special_tokens=False) if words else ())
    return [array("I", (start for start, _ in next(encodings).offsets)) if t else array("I") for t in texts]


def count_tokens(text: str) -> int:
    """The number of CLIP tokens of ``text``, without the start and end tokens (the number to compare with 75)."""
    return len(encode(text)) - 2


def token_strings(text: str) -> list[str]:
    """The BPE token strings of ``text`` (no start / end tokens), for showing where a caption is cut."""
    return list(_backend().encode(text, add_special_tokens=False).tokens)


def token_spans(text: str) -> list[tuple[int, int]]:
    """The character span (start, end) in ``text`` of each CLIP token (no start / end tokens): where token number
    ``k`` comes from, e.g. to name the tags that lie past the 75-token limit."""
    return [tuple(span) for span in _backend().encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]


def cut_position(text: str, max_tokens: int = CHUNK_TOKENS) -> int | None:
    """The character offset in ``text`` where training cuts it (the start of token number ``max_tokens``), or None
    when the text fits in ``max_tokens`` CLIP tokens."""
    spans = token_spans(text)
    if len(spans) <= max_tokens:
        return None
    return spans[max_tokens][0]
