"""A small TOML writer for the configs ``export`` writes (Python reads TOML with ``tomllib`` but cannot write it).

Supports what our configs use: strings, booleans, integers, finite floats, lists of those, tables and arrays of
tables (one level of nesting inside an array, as Kohya's ``[[datasets.subsets]]``). Comments come from a
``comments`` mapping of key -> one line, written above the key.

Example::

    >>> print(dumps({"general": {"shuffle_caption": True}, "datasets": [{"resolution": 512}]}).strip())
    [general]
    shuffle_caption = true
    <BLANKLINE>
    [[datasets]]
    resolution = 512
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def quote(text: str) -> str:
    """``text`` as a TOML basic string; control characters (and DEL) escaped as TOML requires."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else quote(key)


def value(v: Any) -> str:
    """One TOML value (scalar or list of scalars)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _scalars(data: Mapping[str, Any], comments: Mapping[str, str], indent: str) -> list[str]:
    lines = []
    for k, v in data.items():
        if v is None or isinstance(v, Mapping) or _is_table_array(v):
            continue
        if k in comments:
            lines.append(f"{indent}# {comments[k]}")
        lines.append(f"{indent}{_key(k)} = {value(v)}")
    return lines


def _tables(data: Mapping[str, Any], prefix: str, comments: Mapping[str, str], indent: str) -> list[str]:
    lines: list[str] = []
    for k, v in data.items():
        name = f"{prefix}{_key(k)}"
        if isinstance(v, Mapping):
            lines += ["", f"{indent}[{name}]"] + _scalars(v, comments, indent)
            lines += _tables(v, name + ".", comments, indent)
        elif _is_table_array(v):
            for entry in v:
                lines += ["", f"{indent}[[{name}]]"] + _scalars(entry, comments, indent)
                lines += _tables(entry, name + ".", comments, indent + "  ")
    return lines


def dumps(data: Mapping[str, Any], comments: Mapping[str, str] | None = None, header: str = "") -> str:
    """``data`` as TOML text. ``None`` values are left out (TOML has no null). ``header`` lines become comments."""
    comments = comments or {}
    lines = [f"# {line}" for line in header.splitlines()]
    lines += _scalars(data, comments, "")
    lines += _tables(data, "", comments, "")
    return "\n".join(lines).lstrip("\n") + "\n"
