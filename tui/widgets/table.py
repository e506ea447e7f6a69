"""The one table class of the app: a row-cursor DataTable where Home / End go to the first / last row (DataTable's own
Home / End scroll sideways), PageUp / PageDown move a page. Every table of the app is one of these."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable


class NavTable(DataTable[Any]):
    """A DataTable with row navigation keys (Home, End, PageUp, PageDown) that work the same in every tab."""

    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
