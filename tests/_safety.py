"""Shared pieces of the adversarial tests (tests/test_safety_*.py): run the CLI as a user would and prove that
the answer is one clean line and that nothing outside the target changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner, Result

from curator.cli import cli
from tests._report_fixtures import make_image


def invoke(args: list[str]) -> Result:
    """Run ``dreamcurate ARGS`` in-process; exceptions are caught so a traceback shows up as a failure."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result: Result, *words: str, code: int | None = None) -> None:
    """The command failed with a one-line message (holding ``words``), no traceback."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    # the trainer's start-up lines ("training into ...", its stages) may come before the error: the error is what
    # follows them, and it must be one line
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    if errors and code != 2:
        lines = lines[errors[0] :]
    message = lines[-1] if lines else ""
    if code == 2:  # click prints its usage lines first; the error itself is one line
        lines = [line for line in lines if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for word in words:
        assert word in message, result.output


def digest(*roots: Path) -> dict[str, str]:
    """Path -> sha256 of every file (symlinks as their target text) under ``roots``."""
    found: dict[str, str] = {}
    for root in roots:
        for p in sorted([root, *root.rglob("*")]) if root.is_dir() else [root]:
            if p.is_symlink():
                found[str(p)] = "link:" + str(p.readlink())
            elif p.is_file():
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def dataset(root: Path, count: int = 3, concept: str = "3_cat", size: tuple[int, int] = (64, 64)) -> Path:
    """A tiny Kohya dataset ``root/<concept>/N.png`` with ``N.txt`` captions."""
    for n in range(count):
        make_image(root / concept / f"{n}.png", 200 + n, size)
        (root / concept / f"{n}.txt").write_text(f"cat, pose{n}, red", encoding="utf-8")
    return root


def home(root: Path) -> Path:
    """A stand-in for the user's home with a secret in it."""
    (root / ".ssh").mkdir(parents=True)
    (root / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (root / "notes.txt").write_text("my notes\n")
    return root
