"""The real ``python -m curator review DATASET`` in tmux, as a user runs it: keys sent, the screen captured and read.

Skipped when tmux is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from curator.dataset.sample import make_sample_dataset
from curator.dataset.workspace import Workspace
from curator.review.decisions import DecisionStore

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One detached tmux session on a private server socket (never the user's tmux)."""

    def __init__(self, command: str, width: int = 140, height: int = 40) -> None:
        self.socket = f"dreamcurate-test-{uuid.uuid4().hex[:8]}"
        env = dict(os.environ, PYTHONPATH=str(REPO), DREAMCURATE_IMAGES="halfcell")
        for name in (
            "COLUMNS",
            "LINES",
            "TMUX",
        ):  # Textual obeys COLUMNS / LINES; pytest workers may set them
            env.pop(name, None)
        self._run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command, env=env)

    def _run(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
        )
        return out.stdout

    def screen(self) -> str:
        """The visible text of the pane."""
        return self._run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        """Send keys as a user types them."""
        for key in keys:
            self._run("send-keys", "-t", "t", key)
            time.sleep(0.15)

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        """Wait until every one of ``texts`` is on screen (a frame may be half drawn); returns the screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts!r} never appeared; the screen was:\n{screen}")

    def alive(self) -> bool:
        """Whether the session (the app) is still running."""
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "t"], capture_output=True
            ).returncode
            == 0
        )

    def kill(self) -> None:
        """Stop the session and its server."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_review_in_a_real_terminal(tmp_path: Path) -> None:
    root = make_sample_dataset(tmp_path / "sample")
    command = f"{sys.executable} -m curator review {root} --workers 2"  # a cold scan through the process pool
    term = Tmux(command)
    try:
        # the browser is populated after the scan; the footer shows the bindings
        term.wait_for("25 of 25", "img_000.png", "too_small", "Keep", "Drop")
        term.keys("d")  # drop img_000.png
        term.wait_for("DROP")
        term.keys("f", "f")  # any finding, then the first code
        term.keys("?")
        term.wait_for("dreamcurate review: keys")
        term.keys("Escape", "1")
        term.wait_for("Concepts", "mystyle", "too_small")
        term.keys("q")
        deadline = time.monotonic() + 10
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not term.alive(), "q did not quit the app"
    finally:
        term.kill()
    decisions = DecisionStore(Workspace.for_dataset(root)).all()
    assert {rel: d.action for rel, d in decisions.items()} == {"10_mystyle/img_000.png": "drop"}
