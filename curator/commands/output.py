"""Report files the commands write (``--json``, ``--html``): one place that turns a bad target into a one-line
error instead of a traceback, and that refuses a target that would overwrite the user's data.

Example::

    guard_targets({"--json": json_out, "--html": html_out}, ReportGuard(dataset, reg, workspace, force))
    emit_text(json.dumps(data), "-", "--json")          # standard output
    with output_errors("--html", path):
        write_html(curation, path)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from curator.fsutil import atomic_write_text

#: what marks an HTML file as one of our reports: the generator tag in its head (and the footer of older ones)
HTML_MARKS = (b'<meta name="generator" content="dreamcurate">', b"Written by dreamcurate.")
#: a JSON report bigger than this is not read to find out whether it is ours
MAX_JSON_PROBE = 256 << 20


@dataclass(frozen=True)
class ReportGuard:
    """What a report target must stay out of: the dataset (and its regularization folder) except the workspace;
    and an existing file that is not one of our reports, unless ``force``."""

    dataset: Path
    reg: Path | None = None
    workspace: Path | None = None
    force: bool = False


def is_our_report(path: Path) -> bool:
    """True when ``path`` is a report dreamcurate wrote (JSON with our schema, HTML with our generator tag)."""
    try:
        if path.suffix.lower() in (".html", ".htm"):
            with open(path, "rb") as handle:
                head = handle.read(4096)
                handle.seek(max(0, path.stat().st_size - 1024))
                tail = handle.read()
            return HTML_MARKS[0] in head or HTML_MARKS[1] in tail
        if path.stat().st_size > MAX_JSON_PROBE:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("dreamcurate.")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_target(path: Path, option: str, guard: ReportGuard) -> None:
    """A UsageError when writing ``path`` (given with ``option``) could destroy the user's data: a path inside the
    dataset other than its workspace, or an existing file that is not our report (without ``--force``)."""
    from curator.dataset.workspace import Workspace

    resolved = Path(path).absolute().resolve()
    workspace = Workspace.for_dataset(guard.dataset, guard.workspace).root.absolute().resolve()
    for root in [guard.dataset, *([guard.reg] if guard.reg else [])]:
        folder = Path(root).absolute().resolve()
        if _inside(resolved, folder) and not _inside(resolved, workspace):
            raise click.UsageError(
                f"refusing to write {option} {path}: it is inside the dataset {root}; "
                "write reports outside it (or into its workspace)"
            )
    if Path(path).is_symlink():
        raise click.UsageError(f"refusing to write {option} {path}: it is a symbolic link")
    if resolved.is_file() and not guard.force and not is_our_report(resolved):
        raise click.UsageError(
            f"refusing to overwrite {option} {path}: it is not a dreamcurate report (--force overwrites it)"
        )


def guard_targets(targets: dict[str, Path | str | None], guard: ReportGuard) -> None:
    """:func:`check_target` for every given target (``-``, standard output, needs no check); call it before any
    work, so a refused target costs nothing."""
    for option, target in targets.items():
        if target is not None and str(target) != "-":
            check_target(Path(target), option, guard)


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
        atomic_write_text(path, text, errors="backslashreplace")
