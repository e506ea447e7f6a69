"""Items 12 and 13 in the TUI: file names and captions holding markup (``[/bold]``) and terminal escapes are shown
as text in every tab; the app neither crashes (MarkupError) nor passes a raw escape on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests._report_fixtures import make_image
from tui.widgets.browser.item_table import ItemTable

NAME = "[bold]x[red\x1b]2;pwned\x07\x1b[2J"  # a file name cannot hold "/", so no closing tag here
CAPTION = "[/bold] [/], \x1b]2;pwned\x07\x1b[2J, [b]tag[/b]"


def _dataset(root: Path) -> Path:
    folder = root / f"3_cat{NAME}"
    for n in range(3):
        make_image(folder / f"{NAME}{n}.png", 40 + n, (64, 64))
        (folder / f"{NAME}{n}.txt").write_text(f"{CAPTION}, cat{n}\n", encoding="utf-8")
    return root


async def _drive(root: Path) -> None:
    from curator.scan.results import ScanSettings
    from tui.app import create_app

    app = create_app(root, ScanSettings(workers=1, progress=False))
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.state.result is not None and app.query_one(ItemTable).row_count:
                break
        assert app.query_one(ItemTable).row_count == 3, (app.state.log, app.state.result)
        for key in ("1", "2", "3", "4", "5", "6", "2"):
            await pilot.press(key)
            await pilot.pause()
        await pilot.press("e")  # the caption editor's title names the file
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and app.return_code is None
        await pilot.press("4")  # the tags tab: captions' tags in a table
        await pilot.pause()
        shown = app.export_screenshot()
        assert "\x1b" not in shown and "\\x1b]2;pwned" in shown


def test_12_13_hostile_names_and_captions_in_the_tui(tmp_path: Path) -> None:
    asyncio.run(_drive(_dataset(tmp_path / "data")))
