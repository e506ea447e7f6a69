"""The ``dreamcurate`` console script: one click group whose commands live in their own modules and are imported
only when run, so ``dreamcurate --help`` stays fast and imports neither torch, textual, ``trainer`` nor ``tui``.

Commands of the ``trainer`` and ``tui`` packages are named here as import strings; ``curator`` never imports them
itself (the layer rule), the dispatcher does when the user runs one of them.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import click

from curator.textsafe import safe

#: name -> ("module:attribute" of a click command, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("curator.commands.scan:scan", "Analyse a dataset: findings per image and for the whole set."),
    "tags": ("curator.commands.tags:tags", "Audit captions and tags; safe batch edits (--apply / --undo)."),
    "caption": (
        "curator.commands.caption:caption",
        "Captions from a local WD14 tagger or image-to-text model (--apply / --undo).",
    ),
    "plan": ("curator.commands.plan:plan", "Steps, text-encoder stop, buckets, size advice, VRAM and time."),
    "review": ("tui.cli:review", "Review the dataset in the terminal (Textual TUI)."),
    "export": ("curator.commands.export:export", "Write the curated Kohya folder, manifest and configs."),
    "train": (
        "trainer.commands.train:train",
        "Train with the bundled DreamBooth trainer from a TOML config.",
    ),
    "run": ("trainer.commands.run:run", "Scan, report, export and train in one go."),
    "model": ("trainer.commands.model:model", "Model files: info, convert, tiny."),
    "lora": (
        "trainer.commands.lora:lora",
        "LoRA files (Kohya format): extract from a DreamBooth result, check.",
    ),
    "demo": (
        "trainer.commands.demo:demo",
        "Generate a sample dataset and a tiny model; curate and train end to end.",
    ),
}


def os_error_line(exc: OSError) -> str:
    """One line for an ``OSError``: its reason and the path(s) it names (``Not a directory: 'a.txt/x'``)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename:
        blocker = _file_in_the_way(Path(str(exc.filename)))
        if blocker is not None:
            return f"{str(blocker)!r} is a file where a folder is needed"
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return reason
    return f"{reason}: " + " -> ".join(repr(str(p)) for p in paths)


def _tolerant_output() -> None:
    """Let a file name that is not valid UTF-8 print as an escape instead of ending the command with a
    UnicodeEncodeError (stdout is strict under most UTF-8 locales; only the C locale escapes by itself)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists as something other than a folder."""
    for candidate in reversed([path, *path.parents]):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a missing optional piece must not be a traceback
            raise click.ClickException(f"'{cmd_name}' is not available: {exc}") from exc
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; an ``OSError`` no command handled (a folder that is a file, a full disk, no
        permission) is a problem of the user's files, so it ends as one line naming the path, not a traceback."""
        _tolerant_output()
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # its message may quote a file name: no raw control characters
            vars(exc)["message"] = safe(exc.message)  # the attribute is Final for type checkers only
            raise
        except OSError as exc:
            raise click.ClickException(safe(os_error_line(exc))) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(cls=LazyGroup, context_settings=_CONTEXT)
@click.version_option(package_name="dreamcurate", prog_name="dreamcurate")
def cli() -> None:
    """dreamcurate: curate a DreamBooth dataset before you spend GPU hours, then train it.

    Exit codes: 0 success, 1 findings at or above --fail-on (scan) or a failure reported in one line,
    2 usage error.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="dreamcurate", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
