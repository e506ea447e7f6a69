"""Report files the commands write (``--json``, ``--html``): one place that turns a bad target into a one-line
error instead of a traceback.

Example::

    emit_text(json.dumps(data), "-", "--json")          # standard output
    with output_errors("--html", path):
        write_html(result, path)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from curator.fsutil import atomic_write_text


@contextmanager
def output_errors(option: str, path: Path | str) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` (given with ``option``) into a one-line ClickException."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        parent = Path(path).parent
        if parent.exists() and not parent.is_dir():
            reason = f"{parent} is a file, not a folder"
        raise click.ClickException(f"Could not write {option} {path}: {reason}") from exc


def emit_text(text: str, target: str, option: str = "--json") -> None:
    """Write ``text`` to ``target`` atomically, or to standard output when ``target`` is ``-``."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    if not path.parent.is_dir():
        raise click.ClickException(f"Folder for {option} does not exist: {path.parent}")
    if path.is_dir():
        raise click.ClickException(f"{option} {path} is a folder; give a file name")
    with output_errors(option, path):
        atomic_write_text(path, text)
