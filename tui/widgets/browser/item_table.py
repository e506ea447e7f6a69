"""The browser's table of items: one row per item, keyed by its dataset-relative path.

DataTable renders only the visible lines, so 10,000 rows are 10,000 tuples of short strings, not 10,000 widgets.
Column widths follow the table's width: at 80 columns the file and findings columns shrink (an ellipsis, and
``blurry +2`` for codes that do not fit) but none vanishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import zip_longest
from pathlib import PurePosixPath

from rich.text import Text
from textual import events
from textual.widgets.data_table import ColumnKey, DuplicateKey, Row, RowKey

from curator.findings import Severity
from curator.scan.results import ItemRecord
from curator.textsafe import safe
from tui.state import DECISION_MARKS, fit_codes, format_metric, severity_mark, worst_severity
from tui.widgets.table import NavTable

_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
_DECISION_STYLE = {"keep": "green", "drop": "bold red"}
#: The mark of an item whose caption was edited in the review.
EDITED_MARK = "✎"
#: The DataTable state :meth:`ItemTable._append_rows` fills as ``add_row`` does.
_ROW_STATE = ("_row_locations", "_data", "rows", "_new_rows", "_require_update_dimensions", "_update_count")


def column_widths(width: int, metric: bool) -> dict[str, int]:
    """Widths of the columns for a table ``width`` cells wide (each column also takes 2 cells of padding)."""
    fixed = {"mark": 2, "decision": 4, "metric": 8 if metric else 0}
    free = max(width - 2 - 2 * 6 - sum(fixed.values()), 24)  # the scrollbar and the padding come off first
    concept = max(5, min(14, free // 6))
    file = max(10, min(32, (free - concept) * 9 // 20))
    return {**fixed, "file": file, "concept": concept, "findings": max(8, free - concept - file)}


class ItemTable(NavTable):
    """Items with severity and edited marks, file name, concept, decision, finding codes and the sort metric."""

    #: (key, label) in display order; widths come from :func:`column_widths`
    COLUMNS = (
        ("mark", " "),
        ("file", "file"),
        ("concept", "concept"),
        ("decision", "dec"),
        ("findings", "findings"),
        ("metric", "metric"),
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(zebra_stripes=True, **kwargs)
        self.metric: str | None = None
        self.widths = column_widths(100, False)
        self._shown: tuple[list[ItemRecord], dict[str, str], set[str]] = ([], {}, set())

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key, width=self.widths[key])

    def on_resize(self, event: events.Resize) -> None:
        # the outer width: a scrollbar appearing when the rows arrive must not rebuild 10,000 rows
        widths = column_widths(self.outer_size.width, self.metric is not None)
        if widths != self.widths:
            self.widths = widths
            for key, column in self.columns.items():
                column.width = widths[str(key.value)]
            self.show(*self._shown, metric=self.metric)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of every new row to size auto-width columns and auto-height rows. Ours have
        # fixed widths and one-line rows, so there is nothing to measure: 10,000 rows would cost seconds for nothing.
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
        else:
            super()._update_dimensions(())

    def show(
        self,
        records: list[ItemRecord],
        decisions: dict[str, str],
        edited: set[str] | None = None,
        metric: str | None = None,
    ) -> None:
        """Replace the rows by ``records`` (already filtered and sorted), keeping the cursor on the same item."""
        current = self.current_rel()
        edited = edited or set()
        self._shown = (records, decisions, edited)
        if (metric is not None) != (self.metric is not None):
            self.metric = metric
            self.on_resize(events.Resize(self.size, self.size))
            return
        self.metric = metric
        self.clear()
        self.columns[ColumnKey("metric")].label = Text(metric or "", overflow="ellipsis", no_wrap=True)
        self._append_rows(
            [(self._cells(r, decisions.get(r.item.rel), r.item.rel in edited), r.item.rel) for r in records]
        )
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def _append_rows(self, rows: list[tuple[tuple[Text, ...], str]]) -> None:
        """``add_row`` for every ``(cells, key)`` of one-line rows, with its per-row bookkeeping done once.

        ``DataTable.add_row`` re-sets the cursor (a reactive that always notifies) and asks for an idle pass on
        every row: at 20,000 rows that queues tens of thousands of callbacks, seconds before the table shows. The
        rows, their data and the cursor end the same (``tests/test_tui_table.py`` compares both ways); with a
        DataTable whose internals differ, rows are added one by one."""
        if not all(hasattr(self, name) for name in _ROW_STATE) or any(
            c.auto_width for c in self.columns.values()
        ):
            for cells, key in rows:
                self.add_row(*cells, key=key)
            return
        columns = [column.key for column in self.ordered_columns]
        start = self.row_count
        for offset, (cells, key) in enumerate(rows):
            row_key = RowKey(key)
            if row_key in self._row_locations:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            self._row_locations[row_key] = start + offset
            self._data[row_key] = dict(zip_longest(columns, cells))
            self.rows[row_key] = Row(row_key, 1)
            self._new_rows.add(row_key)
        if not rows:
            return
        self._require_update_dimensions = True
        self._update_count += len(rows)
        self.cursor_coordinate = self.cursor_coordinate
        if start == 0 and self.columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # a cell to highlight where there was none: as add_row's first row does
        self.check_idle()

    def set_decision(self, rel: str, decision: str | None) -> None:
        """Update the decision cell of ``rel`` (when it is shown)."""
        if rel in self.rows:
            self.update_cell(rel, "decision", _decision_text(decision))

    def current_rel(self) -> str | None:
        """The rel path of the row under the cursor (None when the table is empty)."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value)

    def shown_rels(self) -> list[str]:
        """The rel paths of every shown row, in display order."""
        return [str(key.value) for key in self.rows]

    def _cells(self, record: ItemRecord, decision: str | None, edited: bool) -> tuple[Text, ...]:
        worst = worst_severity(record.findings)
        mark = Text(severity_mark(record), style=_SEVERITY_STYLE.get(worst, "")) if worst else Text(" ")
        if edited:
            mark.append(EDITED_MARK, style="cyan")
        metric = format_metric(record.metrics[self.metric]) if self.metric in record.metrics else ""
        codes = list(dict.fromkeys(f.code for f in record.findings))
        return (
            mark,
            Text(middle_cut(safe(PurePosixPath(record.item.rel).name), self.widths["file"]), no_wrap=True),
            _cut(safe(record.item.concept)),
            _decision_text(decision),
            Text(fit_codes(codes, self.widths["findings"]), no_wrap=True),
            _cut(metric),
        )


def middle_cut(name: str, width: int) -> str:
    """``name`` in ``width`` cells, cut in the middle (copies differ at the end: ``alice…_002_q60.jpg``)."""
    if len(name) <= width:
        return name
    tail = (width - 1) * 2 // 3
    return name[: width - 1 - tail] + "…" + name[len(name) - tail :]


def _cut(text: str) -> Text:
    """A cell that ends in an ellipsis when it does not fit its column."""
    return Text(text, overflow="ellipsis", no_wrap=True)


def _decision_text(decision: str | None) -> Text:
    if decision is None:
        return Text("")
    return Text(DECISION_MARKS.get(decision, decision), style=_DECISION_STYLE.get(decision, ""))
