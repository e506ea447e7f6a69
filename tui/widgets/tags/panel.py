"""The tags panel: tag frequencies, and the batch edits of ``dreamcurate tags`` with a preview before applying."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Select, Static

from tui.backend import TagChange
from tui.widgets.table import NavTable
from tui.state import TagEditForm

#: batch edit operations (value, label, what the two arguments mean)
OPERATIONS = (
    ("dedupe", "remove duplicate tags", ("", "")),
    ("front", "move tag to front", ("tag", "")),
    ("trigger", "add trigger word", ("trigger", "")),
    ("replace", "replace tag", ("old tag", "new tag")),
    ("remove", "remove tag", ("tag", "")),
)


class TagsPanel(Horizontal):
    """Frequencies on the left, the batch edit form and its preview on the right."""

    @dataclass
    class PreviewRequested(Message):
        """Compute what ``edit`` would change (nothing is written)."""

        edit: TagEditForm

    @dataclass
    class ApplyRequested(Message):
        """Apply ``edit`` (undoable)."""

        edit: TagEditForm

    class UndoRequested(Message):
        """Undo the last applied batch edit."""

    def compose(self) -> ComposeResult:
        yield NavTable(id="tag-freq")
        with Vertical(id="tag-edit"):
            with Horizontal(id="tag-form"):
                yield Select[str](
                    [(label, op) for op, label, _ in OPERATIONS],
                    value="dedupe",
                    id="tag-op",
                    allow_blank=False,
                )
                yield Input(placeholder="tag", id="tag-first")
                yield Input(placeholder="", id="tag-second")
            with Horizontal(id="tag-buttons"):
                yield Button("Preview", id="tag-preview", variant="primary")
                yield Button("Apply", id="tag-apply", variant="warning", disabled=True)
                yield Button("Undo last", id="tag-undo")
            yield Static("Choose an edit and press Preview: nothing changes until Apply.", id="tag-status")
            yield NavTable(id="tag-changes")

    def on_mount(self) -> None:
        freq = self.query_one("#tag-freq", DataTable)
        freq.add_column("tag", key="tag")
        freq.add_column("count", key="count")
        changes = self.query_one("#tag-changes", DataTable)
        changes.add_column("file", key="file")
        changes.add_column("before", key="before")
        changes.add_column("after", key="after")

    def show_frequencies(self, counts: list[tuple[str, int]]) -> None:
        """Fill the frequency table (most frequent first)."""
        table = self.query_one("#tag-freq", DataTable)
        table.clear()
        for tag, count in counts:
            table.add_row(tag, str(count))

    def edit(self) -> TagEditForm:
        """The edit the form describes."""
        op = self.query_one("#tag-op", Select).value
        return TagEditForm(
            str(op),
            self.query_one("#tag-first", Input).value.strip(),
            self.query_one("#tag-second", Input).value.strip(),
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        labels = dict((op, args) for op, _, args in OPERATIONS).get(str(event.value), ("", ""))
        first, second = self.query_one("#tag-first", Input), self.query_one("#tag-second", Input)
        first.placeholder, second.placeholder = labels
        first.disabled, second.disabled = not labels[0], not labels[1]
        self.query_one("#tag-apply", Button).disabled = True

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one("#tag-apply", Button).disabled = True  # a changed form needs a fresh preview

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "tag-preview":
            self.post_message(self.PreviewRequested(self.edit()))
        elif event.button.id == "tag-apply":
            self.post_message(self.ApplyRequested(self.edit()))
        elif event.button.id == "tag-undo":
            self.post_message(self.UndoRequested())

    def show_preview(self, changes: list[TagChange]) -> None:
        """Show what the edit would change and allow Apply when it changes something."""
        table = self.query_one("#tag-changes", DataTable)
        table.clear()
        for change in changes:
            table.add_row(change.rel, change.before, change.after)
        status = f"{len(changes)} captions would change." if changes else "This edit changes nothing."
        self.query_one("#tag-status", Static).update(status)
        self.query_one("#tag-apply", Button).disabled = not changes

    def show_status(self, text: str) -> None:
        """A one-line status under the buttons (after apply or undo)."""
        self.query_one("#tag-status", Static).update(text)
        self.query_one("#tag-apply", Button).disabled = True
        self.query_one("#tag-changes", DataTable).clear()
