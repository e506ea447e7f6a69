"""The browser: filters and sort on top, the item table on the left, the preview on the right.

Keys act on the item under the cursor (keep / drop / edit caption) or on the current filter (bulk drop); the panel
asks the app to do them through messages, since decisions belong to the app's single decision store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Select, Static

from curator.scan.results import ItemRecord, ScanResult
from tui.state import (
    ANY_FINDING,
    NAME_SORT,
    SEVERITY_SORT,
    BrowserView,
    codes_present,
    concepts_present,
    metric_keys,
    visible_records,
)
from tui.widgets.browser.item_table import ItemTable
from tui.widgets.preview.panel import PreviewPanel


class BrowserPanel(Vertical):
    """Items of the scan, filterable by finding code and concept, sortable by any metric."""

    BINDINGS = [
        Binding("k", "decide('keep')", "Keep"),
        Binding("d", "decide('drop')", "Drop"),
        Binding("x", "decide('clear')", "Clear", show=False),
        Binding("D", "bulk_drop", "Drop shown", show=False),
        Binding("e", "edit_caption", "Caption"),
        Binding("f", "cycle_code", "Filter"),
        Binding("c", "cycle_concept", "Concept", show=False),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
    ]

    @dataclass
    class Decide(Message):
        """Set ``decision`` (keep / drop / clear) on ``rels``."""

        rels: list[str]
        decision: str

    @dataclass
    class BulkDrop(Message):
        """Drop every item showing finding ``code`` (asks for confirmation first)."""

        code: str
        rels: list[str]

    @dataclass
    class EditCaption(Message):
        """Open the caption editor on ``rel``."""

        rel: str

    @dataclass
    class Highlighted(Message):
        """The cursor moved to ``rel``: the app fills the preview (it knows the caption and keep_tokens)."""

        rel: str | None

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.view = BrowserView()
        self.result: ScanResult | None = None
        self.decisions: dict[str, str] = {}
        self.edited: set[str] = set()  # items whose caption was edited in the review
        self._codes: list[str] = []
        self._concepts: list[str] = []
        self._sorts: list[str] = [NAME_SORT, SEVERITY_SORT]

    def compose(self) -> ComposeResult:
        with Horizontal(id="browser-filters"):
            yield Select[str]([], prompt="all items", id="filter-code", allow_blank=True, compact=True)
            yield Select[str]([], prompt="all concepts", id="filter-concept", allow_blank=True, compact=True)
            yield Select[str](
                [(NAME_SORT, NAME_SORT)], value=NAME_SORT, id="sort-key", allow_blank=False, compact=True
            )
            yield Static("", id="browser-count")
        with Horizontal(id="browser-body"):
            yield ItemTable(id="items")
            yield PreviewPanel(id="preview")

    # -- loading ------------------------------------------------------------------------------------------------
    def load(self, result: ScanResult, decisions: dict[str, str], edited: set[str] | None = None) -> None:
        """Show ``result``: fill the filter choices and the table."""
        self.result = result
        self.decisions = dict(decisions)
        self.edited = set(edited or ())
        self._codes = codes_present(result)
        self._concepts = concepts_present(result)
        self._sorts = [NAME_SORT, SEVERITY_SORT, *metric_keys(result.records)]
        with self.prevent(Select.Changed):
            self.query_one("#filter-code", Select).set_options(
                [("any finding", ANY_FINDING)] + [(c, c) for c in self._codes]
            )
            self.query_one("#filter-concept", Select).set_options([(c, c) for c in self._concepts])
            self.query_one("#sort-key", Select).set_options([(s, s) for s in self._sorts])
            self._sync_selects()
        self.refresh_table()

    def refresh_table(self) -> None:
        """Re-apply filters and sort to the table."""
        if self.result is None:
            return
        records = visible_records(self.result.records, self.view)
        metric = self.view.sort_key if self.view.sort_key not in (NAME_SORT, SEVERITY_SORT) else None
        table = self.query_one(ItemTable)
        table.show(records, self.decisions, self.edited, metric)
        total = len(self.result.records)
        self.query_one("#browser-count", Static).update(f"{len(records)} of {total}")
        self.post_message(self.Highlighted(table.current_rel()))

    def set_decisions(self, changed: dict[str, str | None]) -> None:
        """Reflect decisions that changed (after a key, a bulk drop or an undo)."""
        table = self.query_one(ItemTable)
        for rel, decision in changed.items():
            if decision is None:
                self.decisions.pop(rel, None)
            else:
                self.decisions[rel] = decision
            table.set_decision(rel, decision)

    def record(self, rel: str) -> ItemRecord | None:
        """The scan record of ``rel`` (None before the scan)."""
        if self.result is None:
            return None
        try:
            return self.result.record(rel)
        except KeyError:
            return None

    # -- filters ------------------------------------------------------------------------------------------------
    def _sync_selects(self) -> None:
        code = self.query_one("#filter-code", Select)
        code.value = self.view.code if self.view.code is not None else Select.NULL
        concept = self.query_one("#filter-concept", Select)
        concept.value = self.view.concept if self.view.concept is not None else Select.NULL
        self.query_one("#sort-key", Select).value = self.view.sort_key

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = None if event.value is Select.NULL else str(event.value)
        before = replace(self.view)
        if event.select.id == "filter-code":
            self.view.code = value
        elif event.select.id == "filter-concept":
            self.view.concept = value
        elif event.select.id == "sort-key" and value is not None:
            self.view.sort_key = value
        if self.view != before:  # a Select echoing a value we set ourselves changes nothing
            self.refresh_table()
            self.query_one(ItemTable).focus()  # the next k / d / arrow is for the table, not the dropdown

    def set_view(self, view: BrowserView) -> None:
        """Switch to ``view`` (filters and sort) and refresh."""
        self.view = view
        with self.prevent(Select.Changed):
            self._sync_selects()
        self.refresh_table()

    def action_cycle_code(self) -> None:
        """Next finding-code filter: all -> any finding -> each code -> all."""
        choices: list[str | None] = [None, ANY_FINDING, *self._codes]
        self.view.code = _next(choices, self.view.code)
        self.set_view(self.view)

    def action_cycle_concept(self) -> None:
        """Next concept filter."""
        choices: list[str | None] = [None, *self._concepts]
        self.view.concept = _next(choices, self.view.concept)
        self.set_view(self.view)

    def action_cycle_sort(self) -> None:
        """Next sort key (name, severity, then every metric); S flips the direction."""
        self.view.sort_key = _next(list(self._sorts), self.view.sort_key) or NAME_SORT
        self.set_view(self.view)

    def action_reverse_sort(self) -> None:
        """Flip the sort direction."""
        self.view.descending = not self.view.descending
        self.set_view(self.view)

    # -- decisions ------------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Decision and caption keys act only while the table has the focus (never from a focused dropdown)."""
        if action in ("decide", "bulk_drop", "edit_caption"):
            return self.query_one(ItemTable).has_focus
        return True

    def captions_edited(self, edited: set[str]) -> None:
        """The review's caption edits changed (saved or undone): redraw the rows with their findings and marks."""
        self.edited = set(edited)
        self.refresh_table()

    def action_decide(self, decision: str) -> None:
        """Keep / drop / clear the item under the cursor, then move down (a review pass is one key per image)."""
        table = self.query_one(ItemTable)
        rel = table.current_rel()
        if rel is None:
            return
        self.post_message(self.Decide([rel], decision))
        table.action_cursor_down()

    def action_bulk_drop(self) -> None:
        """Drop every shown item of the current finding-code filter."""
        if self.view.code is None:
            self.notify(
                "Choose a finding filter first (f), then D drops every item it shows.", severity="warning"
            )
            return
        self.post_message(self.BulkDrop(self.view.code, self.query_one(ItemTable).shown_rels()))

    def action_edit_caption(self) -> None:
        """Edit the caption of the item under the cursor."""
        rel = self.query_one(ItemTable).current_rel()
        if rel is not None:
            self.post_message(self.EditCaption(rel))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(str(event.row_key.value) if event.row_key else None))


def _next(choices: list[str | None], current: str | None) -> str | None:
    """The choice after ``current`` (wrapping); the first when ``current`` is not among them."""
    try:
        return choices[(choices.index(current) + 1) % len(choices)]
    except ValueError:
        return choices[0]
