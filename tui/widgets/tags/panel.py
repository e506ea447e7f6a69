"""The tags panel: tag frequencies (counted as ``dreamcurate tags`` counts), and its batch edits with a concept
scope and a compact preview (per caption: the tags it loses and gains) before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Select, Static

from curator.textsafe import safe
from tui.backend import TagChange
from tui.state import TagEditForm
from tui.widgets.browser.item_table import middle_cut
from tui.widgets.table import NavTable

#: batch edit operations (value, label, what the two arguments mean)
OPERATIONS = (
    ("dedupe", "remove duplicate tags", ("", "")),
    ("front", "move tag to front", ("tag", "")),
    ("trigger", "add trigger word", ("trigger", "")),
    ("replace", "replace tag", ("old tag", "new tag")),
    ("remove", "remove tag", ("tag", "")),
)
#: The concept scope value meaning every training concept.
ALL_CONCEPTS = "*"
#: Frequency table orders: (key, label).
ORDERS = (("count", "most frequent first"), ("tag", "by name"))


def change_text(change: TagChange) -> Text:
    """One caption's change as ``-old +new`` (or a note that only the order changed)."""
    text = Text()
    for tag in change.removed:
        text.append(f"-{safe(tag)} ", style="red")
    for tag in change.added:
        text.append(f"+{safe(tag)} ", style="green")
    if change.moved:
        text.append("reordered: " + safe(change.after.split(",")[0].strip()) + " first", style="yellow")
    return text


class TagsPanel(Horizontal):
    """Frequencies on the left, the batch edit form and its preview on the right."""

    BINDINGS = [Binding("o", "cycle_order", "Order tags", show=False)]

    @dataclass
    class PreviewRequested(Message):
        """Compute what ``edit`` would change (nothing is written)."""

        edit: TagEditForm

    @dataclass
    class ApplyRequested(Message):
        """Apply ``edit`` (undoable)."""

        edit: TagEditForm

    @dataclass
    class ScopeChanged(Message):
        """The concept scope changed: the app recounts the frequencies for ``concept`` (None: all)."""

        concept: str | None

    class UndoRequested(Message):
        """Undo the last applied batch edit."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.counts: list[tuple[str, int]] = []
        self.order = "count"
        self.changes: list[TagChange] = []

    def compose(self) -> ComposeResult:
        yield NavTable(id="tag-freq")
        with Vertical(id="tag-edit"):
            with Horizontal(id="tag-scope-row"):
                yield Static("Concept", classes="tag-label")
                yield Select[str](
                    [("all concepts", ALL_CONCEPTS)],
                    value=ALL_CONCEPTS,
                    id="tag-scope",
                    allow_blank=False,
                    compact=True,
                )
            with Horizontal(id="tag-form"):
                yield Select[str](
                    [(label, op) for op, label, _ in OPERATIONS],
                    value="dedupe",
                    id="tag-op",
                    allow_blank=False,
                    compact=True,
                )
                yield Input(placeholder="tag", id="tag-first", compact=True, disabled=True)
                yield Input(placeholder="", id="tag-second", compact=True, disabled=True)
            with Horizontal(id="tag-buttons"):
                yield Button("Preview", id="tag-preview", variant="primary", compact=True)
                yield Button("Apply", id="tag-apply", variant="warning", disabled=True, compact=True)
                yield Button("Undo last", id="tag-undo", compact=True)
            yield Static("Choose an edit and press Preview: nothing changes until Apply.", id="tag-status")
            yield NavTable(id="tag-changes")

    def on_mount(self) -> None:
        freq = self.query_one("#tag-freq", NavTable)
        freq.add_column("n", key="count", width=5)
        freq.add_column("tag", key="tag")
        changes = self.query_one("#tag-changes", NavTable)
        changes.add_column("file", key="file", width=20)
        changes.add_column("change", key="change")

    def set_concepts(self, concepts: list[str]) -> None:
        """The concepts a batch edit may be scoped to (training concepts only)."""
        scope = self.query_one("#tag-scope", Select)
        with self.prevent(Select.Changed):
            scope.set_options([("all concepts", ALL_CONCEPTS)] + [(c, c) for c in concepts])
            scope.value = ALL_CONCEPTS

    def scope(self) -> str | None:
        """The concept the form edits (None: every training concept)."""
        value = self.query_one("#tag-scope", Select).value
        return None if value in (ALL_CONCEPTS, Select.NULL) else str(value)

    def show_frequencies(self, counts: list[tuple[str, int]]) -> None:
        """Fill the frequency table (in the panel's order; ``o`` switches count / name)."""
        self.counts = counts
        table = self.query_one("#tag-freq", NavTable)
        table.clear()
        rows = counts if self.order == "count" else sorted(counts, key=lambda kv: kv[0].lower())
        for tag, count in rows:
            table.add_row(
                Text(str(count), justify="right"), Text(safe(tag), overflow="ellipsis", no_wrap=True)
            )

    def action_cycle_order(self) -> None:
        """Order the frequency table by count, then by name, then by count again."""
        keys = [k for k, _ in ORDERS]
        self.order = keys[(keys.index(self.order) + 1) % len(keys)]
        self.show_frequencies(self.counts)

    def on_data_table_header_selected(self, event: NavTable.HeaderSelected) -> None:
        event.stop()
        self.order = str(event.column_key.value)
        self.show_frequencies(self.counts)

    def edit(self) -> TagEditForm:
        """The edit the form describes."""
        op = self.query_one("#tag-op", Select).value
        return TagEditForm(
            str(op),
            self.query_one("#tag-first", Input).value.strip(),
            self.query_one("#tag-second", Input).value.strip(),
            self.scope(),
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.query_one("#tag-apply", Button).disabled = True  # a changed form needs a fresh preview
        if event.select.id == "tag-scope":
            self.post_message(self.ScopeChanged(self.scope()))
            return
        labels = dict((op, args) for op, _, args in OPERATIONS).get(str(event.value), ("", ""))
        first, second = self.query_one("#tag-first", Input), self.query_one("#tag-second", Input)
        first.placeholder, second.placeholder = labels
        first.disabled, second.disabled = not labels[0], not labels[1]

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one("#tag-apply", Button).disabled = True  # a changed form needs a fresh preview

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.PreviewRequested(self.edit()))  # Enter in a field previews

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "tag-preview":
            self.post_message(self.PreviewRequested(self.edit()))
        elif event.button.id == "tag-apply":
            self.post_message(self.ApplyRequested(self.edit()))
        elif event.button.id == "tag-undo":
            self.post_message(self.UndoRequested())

    def on_resize(self, event: events.Resize) -> None:
        if self.changes:
            self.show_preview(self.changes)

    def show_preview(self, changes: list[TagChange]) -> None:
        """Show what the edit would change, one compact line per caption, and allow Apply when it changes
        something."""
        self.changes = changes
        table = self.query_one("#tag-changes", NavTable)
        table.clear()
        for change in changes:
            table.add_row(middle_cut(safe(PurePosixPath(change.rel).name), 20), change_text(change))
        scope = self.scope() or "all concepts"
        status = (
            f"{len(changes)} captions of {scope} would change." if changes else "This edit changes nothing."
        )
        self.query_one("#tag-status", Static).update(status)
        self.query_one("#tag-apply", Button).disabled = not changes

    def show_status(self, text: str) -> None:
        """A one-line status under the buttons (after apply or undo)."""
        self.changes = []
        self.query_one("#tag-status", Static).update(text)
        self.query_one("#tag-apply", Button).disabled = True
        self.query_one("#tag-changes", NavTable).clear()
