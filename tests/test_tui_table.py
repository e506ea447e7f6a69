"""The browser table's bulk row append ends in the state DataTable.add_row leaves, row for row."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult

from tui.widgets.browser.item_table import ItemTable


class _Fixed(ItemTable):
    """The table without its rebuild on resize (it would show its own records, none here)."""

    def on_resize(self, event: events.Resize) -> None:
        event.prevent_default()  # Textual would call the base class's handler too


class _Two(App[None]):
    def compose(self) -> ComposeResult:
        yield _Fixed(id="bulk")
        yield _Fixed(id="plain")


def _rows(start: int, n: int) -> list[tuple[tuple[Text, ...], str]]:
    return [
        (tuple(Text(f"{c}{i}") for c in ("m", "f", "c", "d", "x", "v")), f"10_a/{i:05d}.png")
        for i in range(start, start + n)
    ]


def test_bulk_append_equals_add_row() -> None:
    async def run() -> None:
        app = _Two()
        async with app.run_test(size=(120, 30)) as pilot:
            bulk, plain = app.query_one("#bulk", ItemTable), app.query_one("#plain", ItemTable)
            for start, n in ((0, 40), (40, 25), (65, 0)):  # into an empty table, then onto rows already there
                bulk._append_rows(_rows(start, n))
                for cells, key in _rows(start, n):
                    plain.add_row(*cells, key=key)
                await pilot.pause()
                assert bulk.row_count == plain.row_count == start + n
                assert list(bulk.rows) == list(plain.rows)
                assert [(r.height, r.label, r.auto_height) for r in bulk.rows.values()] == [
                    (r.height, r.label, r.auto_height) for r in plain.rows.values()
                ]
                assert [bulk.get_row_at(i) for i in range(bulk.row_count)] == [
                    plain.get_row_at(i) for i in range(plain.row_count)
                ]
                assert [bulk.get_row_index(k) for k in bulk.rows] == list(range(bulk.row_count))
                assert bulk.cursor_coordinate == plain.cursor_coordinate
            bulk.move_cursor(row=50)
            plain.move_cursor(row=50)
            await pilot.pause()
            assert bulk.current_rel() == plain.current_rel() == "10_a/00050.png"

    asyncio.run(run())
