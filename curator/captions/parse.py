"""Captions as Kohya sd-scripts reads them: one file per image, first line only, comma-separated tags.

What training does with a caption (``library/train_util.py``: ``read_caption`` and ``process_caption``):

- the caption file is read as UTF-8 (a decode error stops training; an empty file fails an assertion), and only
  its first line is used, stripped;
- with ``shuffle_caption`` the line is split at the caption separator (``,``); the first ``keep_tokens`` TAGS (not
  CLIP tokens) stay in place and the rest are shuffled every time the image is seen, then joined with ``", "``.
  When the caption contains ``keep_tokens_separator`` (``|||``), the part before it is the fixed prefix instead
  (``keep_tokens`` is then ignored), and a second separator marks a fixed suffix;
- without shuffling (and without tag dropout) the line goes to the tokenizer as written, ``|||`` included;
- weights such as ``(tag:1.2)`` mean something only with ``--weighted_captions``; otherwise the brackets are text.

For comparing tags we normalise them (:func:`normalize_tag`): weights and emphasis brackets removed, escaped
brackets ``\\(`` unescaped, underscores read as spaces, lower case, single spaces.

Example::

    >>> parse_caption("sks, 1girl ||| blue_eyes, (smile:1.2), \\\\(cosplay\\\\)").fixed
    ('sks', '1girl')
    >>> normalize_tag("(Blue_Eyes:1.2)"), normalize_tag("ganyu_\\\\(genshin_impact\\\\)")
    ('blue eyes', 'ganyu (genshin impact)')
    >>> import random
    >>> shuffle_caption("sks, a, b, c", keep_tokens=1, rng=random.Random(0))
    'sks, a, c, b'
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

CAPTION_SEPARATOR = ","
KEEP_TOKENS_SEPARATOR = "|||"

_WEIGHT_SUFFIX = re.compile(r":\s*[-+]?(?:\d+\.?\d*|\.\d+)\s*$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class CaptionFile:
    """What reading one caption file gave.

    ``status``: ``"ok"``, ``"missing"`` (no file), ``"empty"`` (the first line is blank), ``"not_utf8"``;
    ``too_large``: only the start of a huge file was read (``raw`` is then None).
    ``text`` is the first line, stripped (what Kohya trains on; ``""`` unless ``ok``). ``raw`` is the whole file's
    text (None when missing or undecodable), ``zero_bytes`` marks an empty file (Kohya stops with an assertion),
    ``extra_lines`` counts non-blank lines after the first (ignored by training).
    """

    path: Path | None
    status: str
    text: str = ""
    raw: str | None = None
    zero_bytes: bool = False
    extra_lines: int = 0
    error: str | None = None
    too_large: bool = (
        False  # more than MAX_CAPTION_BYTES: only the start was read (raw is None: never edited)
    )


#: what is read of a caption file: training reads its first line; a caption is a few hundred bytes
MAX_CAPTION_BYTES = 64 << 10


def read_caption(path: Path | None) -> CaptionFile:
    """Read a caption file the way Kohya does (UTF-8, first line, stripped) without ever raising. Only the first
    :data:`MAX_CAPTION_BYTES` are read: a huge file costs no more than a caption."""
    if path is None:
        return CaptionFile(None, "missing")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CAPTION_BYTES + 1)
    except FileNotFoundError:
        return CaptionFile(path, "missing")
    except OSError as exc:
        return CaptionFile(path, "missing", error=str(exc))
    if len(data) > MAX_CAPTION_BYTES:
        head = data[:MAX_CAPTION_BYTES].decode("utf-8", "replace").splitlines()
        first = head[0].strip() if head else ""
        return CaptionFile(path, "ok" if first else "empty", first, None, too_large=True)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return CaptionFile(path, "not_utf8", error=f"byte {exc.start}: {exc.reason}")
    # Python's readlines() splits on \n (and keeps \r\n lines whole): the same first line Kohya gets.
    lines = raw.splitlines()
    first = lines[0].strip() if lines else ""
    extra = sum(1 for line in lines[1:] if line.strip())
    status = "ok" if first else "empty"
    return CaptionFile(path, status, first, raw, zero_bytes=not data, extra_lines=extra)


@dataclass(frozen=True)
class Caption:
    """A caption line split into tags. ``fixed`` is the kept prefix when the line uses ``|||`` (else empty),
    ``flex`` the shuffled middle, ``suffix`` the kept tail after a second ``|||``. Empty tags are dropped."""

    text: str
    fixed: tuple[str, ...]
    flex: tuple[str, ...]
    suffix: tuple[str, ...]
    has_separator: bool

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag in written order."""
        return self.fixed + self.flex + self.suffix

    @cached_property
    def normalized(self) -> tuple[str, ...]:
        """:func:`normalize_tag` of every tag, in written order (computed once: the audit reads it many times)."""
        return tuple(normalize_tag(t) for t in self.tags)


def split_tags(text: str, separator: str = CAPTION_SEPARATOR) -> list[str]:
    """The non-empty stripped tags of ``text`` split at ``separator``."""
    return [t.strip() for t in text.split(separator) if t.strip()]


def parse_caption(
    text: str, separator: str = CAPTION_SEPARATOR, keep_tokens_separator: str = KEEP_TOKENS_SEPARATOR
) -> Caption:
    """Split a caption line (first line only) into tags, honouring ``keep_tokens_separator`` as Kohya does."""
    line = text.split("\n")[0].strip()
    if keep_tokens_separator and keep_tokens_separator in line:
        fixed_part, flex_part = line.split(keep_tokens_separator, 1)
        suffix_part = ""
        if keep_tokens_separator in flex_part:
            flex_part, suffix_part = flex_part.split(keep_tokens_separator, 1)
        return Caption(
            line,
            tuple(split_tags(fixed_part, separator)),
            tuple(split_tags(flex_part, separator)),
            tuple(split_tags(suffix_part, separator)),
            True,
        )
    return Caption(line, (), tuple(split_tags(line, separator)), (), False)


def _is_escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index > 0 and text[index - 1] == "\\":
        backslashes += 1
        index -= 1
    return backslashes % 2 == 1


def _strip_emphasis(tag: str) -> str:
    # Peel matching unescaped ( ) or [ ] around the whole tag, and a ":weight" inside round brackets.
    while len(tag) >= 2:
        opener, closer = tag[0], tag[-1]
        if (opener, closer) not in (("(", ")"), ("[", "]")) or _is_escaped(tag, len(tag) - 1):
            break
        inner = tag[1:-1].strip()
        if opener == "(":
            inner = _WEIGHT_SUFFIX.sub("", inner).strip()
        tag = inner
    return tag


@lru_cache(maxsize=1 << 16)  # a dataset repeats a few hundred tags thousands of times
def normalize_tag(tag: str) -> str:
    """The form of a tag used for comparisons: ``(Blue_Eyes:1.2)`` and ``blue eyes`` are the same tag,
    ``\\(artist\\)`` is ``(artist)``. Training itself sees the tag as written."""
    tag = _strip_emphasis(tag.strip())
    tag = re.sub(r"\\([()\[\]\\])", r"\1", tag)
    tag = tag.replace("_", " ")
    return _SPACES.sub(" ", tag).strip().lower()


@dataclass(frozen=True)
class CaptionOptions:
    """How the trainer turns a caption line into the text it encodes (Kohya's names and defaults)."""

    shuffle_caption: bool = True  # shuffle the tags after the kept ones every time the image is seen
    keep_tokens: int = (
        0  # number of leading TAGS that never move (ignored when the caption uses the separator)
    )
    caption_separator: str = CAPTION_SEPARATOR  # what separates tags
    keep_tokens_separator: str = (
        KEEP_TOKENS_SEPARATOR  # explicit kept prefix / suffix marker inside a caption
    )
    caption_tag_dropout_rate: float = 0.0  # chance of dropping each non-kept tag
    caption_prefix: str = ""  # text put before every caption (with a space)
    caption_suffix: str = ""  # text put after every caption (with a space)


def shuffle_caption(
    text: str,
    keep_tokens: int = 0,
    rng: random.Random | None = None,
    separator: str = CAPTION_SEPARATOR,
    keep_tokens_separator: str = KEEP_TOKENS_SEPARATOR,
    tag_dropout_rate: float = 0.0,
    shuffle: bool = True,
) -> str:
    """Kohya's shuffle: keep the first ``keep_tokens`` tags (or the ``|||`` prefix and suffix), shuffle the rest,
    optionally drop some, join with ``", "``. Without the separator, empty tags are kept, as Kohya keeps them."""
    rng = rng or random.Random()
    suffix: list[str] = []
    if keep_tokens_separator and keep_tokens_separator in text:
        fixed_part, flex_part = text.split(keep_tokens_separator, 1)
        if keep_tokens_separator in flex_part:
            flex_part, suffix_part = flex_part.split(keep_tokens_separator, 1)
            suffix = split_tags(suffix_part, separator)
        fixed = split_tags(fixed_part, separator)
        flex = split_tags(flex_part, separator)
    else:
        tags = [t.strip() for t in text.strip().split(separator)]
        fixed = tags[:keep_tokens] if keep_tokens > 0 else []
        flex = tags[keep_tokens:] if keep_tokens > 0 else tags
    if shuffle:
        rng.shuffle(flex)
    if tag_dropout_rate > 0:
        flex = [t for t in flex if rng.random() >= tag_dropout_rate]
    return ", ".join(fixed + flex + suffix)


def process_caption(text: str, options: CaptionOptions, rng: random.Random | None = None) -> str:
    """The text the trainer encodes for a caption line, as Kohya's ``process_caption`` makes it (without caption
    dropout, wildcards and token warm-up): prefix / suffix, first line, then shuffle and tag dropout if enabled."""
    if options.caption_prefix:
        text = options.caption_prefix + " " + text
    if options.caption_suffix:
        text = text + " " + options.caption_suffix
    text = text.split("\n")[0]
    if options.shuffle_caption or options.caption_tag_dropout_rate > 0:
        text = shuffle_caption(
            text,
            options.keep_tokens,
            rng,
            options.caption_separator,
            options.keep_tokens_separator,
            options.caption_tag_dropout_rate,
            shuffle=options.shuffle_caption,
        )
    return text
