"""Text from the user's files (names, captions, tags, paths) made safe to show: one escape for every terminal, log
and TUI string.

A file name can hold any byte but ``/`` and NUL: ``ESC ]2;...`` retitles the terminal, ``ESC [2J`` clears it, a
right-to-left override reorders what is shown, a bare carriage return hides what came before, a byte that is not
UTF-8 (held by Python as a lone surrogate) makes ``print`` raise. :func:`safe` writes each of them as a visible
escape (``\\x1b``, ``\\u202e``, ``\\xff``); text without them comes back unchanged. Rich and Textual read ``[...]``
as markup: :func:`markup` escapes that too, for the places that build markup strings.

Example::

    print(safe("bad\\x1b]2;pwned\\x07name.png"))      # bad\\x1b]2;pwned\\x07name.png, shown literally
    console.print(f"[bold]{markup(path)}[/]")
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

#: C0 controls, DEL, C1 controls, bidi overrides and isolates, zero-width and line/paragraph separators, and lone
#: surrogates (the bytes of a name that is not UTF-8)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
#: the same, but line breaks and tabs are allowed (a caption's lines, a diff)
_UNSAFE_BLOCK = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``text`` as one line with every control or invisible character written as a visible escape."""
    return _UNSAFE.sub(_escape, str(text))


def safe_block(text: object) -> str:
    """Like :func:`safe`, but line breaks and tabs stay (for multi-line text: a caption file, a diff)."""
    return _UNSAFE_BLOCK.sub(_escape, str(text))


def markup(text: object) -> str:
    """:func:`safe`, then escaped for Rich/Textual markup: for user text inside a markup string."""
    from rich.markup import escape

    return escape(safe(text))


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`safe` would escape (the property tests use it)."""
    return _UNSAFE_BLOCK.search(text) is not None


def text(value: object, style: str = "") -> Text:
    """A Rich ``Text`` of :func:`safe` ``value``: for tables and widgets, which would read a plain ``str`` as markup
    (a caption holding ``[/bold]`` would raise MarkupError there)."""
    from rich.text import Text

    return Text(safe(value), style=style)
