"""Atomic file writes: a temporary file in the same folder, fsync, then rename. A reader (or a crash) sees the old
file or the new one, never half of one.

Example::

    atomic_write_text(Path("a.txt"), "cat, sitting\n")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: bytes of the file's name kept in its temporary's name: ".NAME.XXXXXXXX.tmp" must fit in 255 bytes
TEMP_NAME_BYTES = 200


def temp_prefix(name: str) -> str:
    """The prefix of the temporary file an atomic write of ``name`` uses (long names cut, so that it still fits the
    file system's 255-byte limit)."""
    raw = name.encode("utf-8", "surrogateescape")[:TEMP_NAME_BYTES]
    return "." + raw.decode("utf-8", "surrogateescape") + "."


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the folder must exist). Keeps the old file's permission bits."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8", errors: str = "strict") -> None:
    """Write ``text`` to ``path`` atomically. ``errors="backslashreplace"`` suits JSON: a file name that is not
    valid UTF-8 (held as lone surrogates) is written as the ``\\udcXX`` escape JSON itself uses."""
    atomic_write_bytes(path, text.encode(encoding, errors))
