"""The real ``dreamcurate review`` in a terminal (tmux): typing a path and digits into the Plan and Train tabs
changes no decision. Skipped where tmux is not installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tui_support import make_dataset

from curator.dataset.workspace import Workspace
from curator.review.decisions import DecisionStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One tmux server of its own (a private socket), one session running ``command``."""

    def __init__(self, command: str, size: tuple[int, int] = (100, 30)) -> None:
        self.socket = f"dreamcurate-test-{uuid.uuid4().hex[:8]}"
        self.run("new-session", "-d", "-s", "app", "-x", str(size[0]), "-y", str(size[1]), command)

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "app", *(["-l"] if literal else []), *keys)
        time.sleep(0.3)  # the app reads keys in its own loop

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.screen()}")

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "app"], capture_output=True
            ).returncode
            == 0
        )

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _decisions(root: Path) -> dict[str, str]:
    return {rel: d.action for rel, d in DecisionStore(Workspace.for_dataset(root)).all().items()}


def test_typing_in_the_plan_and_train_tabs_of_the_real_command_changes_no_decision(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    command = (
        f"cd {REPO} && PYTHONPATH={REPO} DREAMCURATE_IMAGES=halfcell "
        f"{sys.executable} -m curator review {root} --workers 1; sleep 0.5"
    )
    tmux = Tmux(command)
    try:
        tmux.wait_for("of 6")  # the browser is populated
        tmux.keys("d")  # one decision: drop a.png
        deadline = time.monotonic() + 10
        while _decisions(root) != {"10_cat/a.png": "drop"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _decisions(root) == {"10_cat/a.png": "drop"}
        tmux.keys("5")
        tmux.keys("BSpace", "BSpace", "BSpace")
        tmux.keys("20ukdrxU3", literal=True)
        tmux.keys("Escape")
        tmux.keys("6")
        tmux.keys("/models/u/k/d/r/base-1234.safetensors", literal=True)
        tmux.keys("Tab")
        tmux.keys("udkUr56", literal=True)
        screen = tmux.screen()
        assert "/models/u/k/d/r/base-1234.safetensors" in screen  # the path went into the field
        tmux.keys("Escape")
        tmux.keys("5")
        assert "20" in tmux.wait_for("Epochs")
        tmux.keys("Escape")
        tmux.keys("q")
        deadline = time.monotonic() + 20
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _decisions(root) == {"10_cat/a.png": "drop"}
    finally:
        tmux.close()
