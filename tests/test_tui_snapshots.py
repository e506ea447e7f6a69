"""Snapshots of the main screens (pytest-textual-snapshot). Repeatable: fixed terminal size, a hand-built scan over
generated images, relative paths only, half-block images, no clock. Update with ``--snapshot-update``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import make_app, make_dataset

from tui.widgets.browser.item_table import ItemTable

#: The smallest terminal the app is meant for, and a large one.
SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])


@pytest.fixture(autouse=True)
def _halfcell_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DREAMCURATE_IMAGES", "halfcell")


def _app(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = make_dataset(tmp_path / "ds")
    return make_app(root, export_dir=Path("ds-curated"))


def _settled(*keys: str):  # type: ignore[no-untyped-def]
    """A run_before that waits for the scan, presses ``keys`` and waits for every worker (thumbnails)."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        for _ in range(100):
            await pilot.pause()
            if pilot.app.state.result is not None and pilot.app.query_one(ItemTable).row_count:
                break
        for key in keys:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        for widget in pilot.app.screen.query("Input, TextArea"):  # a blinking cursor is not repeatable
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


@SIZES
def test_browser_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("down", "down", "down"))


@SIZES
def test_browser_filtered_and_sorted(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("f", "s", "s", "s"))


@SIZES
def test_overview_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("1"))


@SIZES
def test_duplicates_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("3", "l"))


@SIZES
def test_tags_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("4"))


@SIZES
def test_plan_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("5"))


@SIZES
def test_train_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("6"))


@SIZES
def test_caption_editor(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(tmp_path), terminal_size=size, run_before=_settled("down", "down", "e"))
