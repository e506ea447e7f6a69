"""The help screen (``?``): every key of the app, by region."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (region, key, what it does); the footer shows the keys of the focused region, this lists them all.
KEYS = (
    ("anywhere", "1-6", "Overview, Browser, Duplicates, Tags, Plan, Train (not while typing in a field)"),
    ("anywhere", "escape", "leave a field: back to the table, or to the tab bar on Plan and Train"),
    ("anywhere", "home / end", "first / last row of any table; pageup / pagedown move a page"),
    (
        "browser, duplicates",
        "u",
        "undo the last step (decision, bulk drop, keeper, caption edit); it says which",
    ),
    ("browser, duplicates", "U / ctrl+y", "redo what the last undo reverted"),
    ("browser, duplicates", "r", "rescan (cached metrics are reused)"),
    ("anywhere", "?", "this help"),
    ("anywhere", "q", "quit (decisions are already saved)"),
    ("browser", "up/down", "move; the preview follows"),
    (
        "browser",
        "k / d / x",
        "keep / drop / clear the item, then move down (only while the table has the focus)",
    ),
    ("browser", "D", "drop every item the current finding filter shows (asks first)"),
    ("browser", "e", "edit the caption (ctrl+s saves, escape discards)"),
    ("browser", "f / c", "cycle the finding-code filter / the concept filter"),
    ("browser", "s / S", "cycle the sort key (name, severity, any metric) / reverse it"),
    ("preview", "a", "on the suggested tags (tab to them): open the caption editor with them added"),
    ("duplicates", "h / l", "previous / next image of the cluster (the cards page through every member)"),
    ("duplicates", "K", "keep the selected image, drop the rest of the cluster"),
    ("tags", "tab", "move through the form; Preview shows the change, Apply writes it (undoable)"),
    ("tags", "o", "order the tag table by count or by name"),
    ("plan", "type", "the plan updates as you type; values training would refuse are shown in red, not used"),
    ("train", "buttons", "Export writes the curated folder; Train runs the trainer; Cancel stops it"),
)


def keys_table() -> Table:
    """The key table shown by the help screen."""
    table = Table(title="dreamcurate review: keys", expand=True)
    table.add_column("where", style="dim")
    table.add_column("key", style="bold")
    table.add_column("does")
    for region, key, text in KEYS:
        table.add_row(region, key, text)
    return table


class HelpScreen(ModalScreen[None]):
    """Modal help; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(keys_table())
            yield Static("The mouse works too: click rows, tabs and buttons.", id="help-foot")
