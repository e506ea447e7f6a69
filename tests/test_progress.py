"""The shared progress bar: every advance reaches the callback; the bar itself only on a terminal."""

from __future__ import annotations

import sys

import pytest

from curator.progress import progress_bar


def test_callback_sees_every_advance_without_a_terminal() -> None:
    seen: list[tuple[int, int]] = []
    with progress_bar("exporting", 60, True, lambda done, total: seen.append((done, total))) as advance:
        for _ in range(60):
            advance()
    assert seen == [(k, 60) for k in range(1, 61)]


def test_bar_on_a_terminal_starts_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal (stderr says so) the bar is drawn and removed again; below min_items, or disabled, never."""
    from rich import progress

    started: list[str] = []
    real_start = progress.Progress.start
    monkeypatch.setattr(progress.Progress, "start", lambda self: started.append("start") or real_start(self))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    for total, enabled in ((60, True), (10, True), (60, False)):
        with progress_bar("scanning", total, enabled) as advance:
            for _ in range(total):
                advance()
    assert started == ["start"]
