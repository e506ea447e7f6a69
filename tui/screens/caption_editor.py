"""The caption editor: a text area with a live CLIP token counter. Nothing is written until ctrl+s."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from curator.textsafe import text as safe_text
from tui.backend import CaptionView
from tui.widgets.preview.panel import caption_text, token_line


class CaptionEditor(ModalScreen[str | None]):
    """Edits one caption; dismisses with the new text on save, None on cancel.

    ``describe`` turns a text into a :class:`CaptionView` (token count, keep_tokens boundary, lost tags): the app
    passes the backend's function, so the counter is the tokenizer training uses.
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, rel: str, text: str, describe: Callable[[str], CaptionView]) -> None:
        super().__init__()
        self.rel = rel
        self.original = text
        self.describe = describe

    def compose(self) -> ComposeResult:
        with Vertical(id="editor-body"):
            yield Static(safe_text(f"Caption of {self.rel}"), id="editor-title")
            yield TextArea(self.original, id="editor-text", soft_wrap=True, show_line_numbers=False)
            yield Static(id="editor-tokens")
            yield Static(id="editor-tags")
        yield Footer()

    def on_mount(self) -> None:
        self._update(self.original)
        self.query_one(TextArea).focus()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._update(event.text_area.text)

    def _update(self, text: str) -> None:
        view = self.describe(" ".join(text.split()))
        self.query_one("#editor-tokens", Static).update(token_line(view))
        self.query_one("#editor-tags", Static).update(caption_text(view))

    def action_save(self) -> None:
        """Close and hand the text back (the app writes it)."""
        self.dismiss(" ".join(self.query_one(TextArea).text.split()))

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
