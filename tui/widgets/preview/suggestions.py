"""Suggested tags in the preview: what the last ``dreamcurate caption`` run proposed for the selected image (read
from the workspace cache; nothing runs here), and ``a`` to take them into the caption editor."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from curator.captions.merge import merge_line
from curator.captions.parse import split_tags
from curator.captions.store import suggestion_for
from curator.scan.results import ItemRecord


class SuggestedTags(Static):
    """The cached suggestion of one image; hidden when there is none. Focus it (tab or click) and press ``a``:
    the caption editor opens on the caption with the suggested tags it lacks appended (saved only with ctrl+s)."""

    can_focus = True
    BINDINGS = [Binding("a", "accept", "Accept suggested tags")]

    @dataclass
    class Accepted(Message):
        """Open the caption editor on ``rel`` with ``text`` (the caption plus the suggested tags)."""

        rel: str
        text: str

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.accepted: tuple[str, str] | None = None  # (rel, caption with the suggestions) while one is shown
        self.display = False

    def show(self, record: ItemRecord | None, caption: str) -> None:
        """Show the suggestion for ``record`` (``caption``: the caption training reads now)."""
        workspace = getattr(getattr(self.app, "backend", None), "workspace", None)
        found = None
        if record is not None and workspace is not None:
            found = suggestion_for(workspace, record.item.rel, record.item.path)
        self.display = found is not None
        self.accepted = None
        if found is None or record is None:
            self.update("")
            return
        source, text = found
        merged = merge_line(caption, split_tags(text), "append")
        self.accepted = (record.item.rel, merged)
        line = Text(f"suggested by {source}", style="bold cyan")
        line.append(
            "  (a: accept into the editor)\n" if merged != caption else "  (already in the caption)\n"
        )
        line.append(text)
        self.update(line)

    def action_accept(self) -> None:
        """Hand the caption with the suggested tags to the app, which opens the editor."""
        if self.accepted is not None:
            self.post_message(self.Accepted(*self.accepted))
