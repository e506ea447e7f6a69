"""The browser's table of items: one row per item, keyed by its dataset-relative path.

DataTable renders only the visible lines, so 10,000 rows are 10,000 tuples of short strings, not 10,000 widgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from curator.findings import Severity
from curator.scan.results import ItemRecord
from curator.textsafe import text as safe_text
from tui.state import DECISION_MARKS, finding_codes, format_metric, severity_mark, worst_severity

_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
_DECISION_STYLE = {"keep": "green", "drop": "bold red"}


class ItemTable(DataTable[Text | str]):
    """Items with severity mark, file name, concept, decision, finding codes and the sort metric."""

    #: (key, label, width): fixed widths, so adding 10,000 rows never measures 10,000 cells
    COLUMNS = (
        ("mark", " ", 1),
        ("file", "file", 28),
        ("concept", "concept", 14),
        ("decision", "decision", 8),
        ("findings", "findings", 36),
        ("metric", "metric", 12),
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.metric: str | None = None

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, key=key, width=width)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of every new row to size auto-width columns and auto-height rows. Ours have
        # fixed widths and one-line rows, so there is nothing to measure: 10,000 rows would cost seconds for nothing.
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
        else:
            super()._update_dimensions(())

    def show(self, records: list[ItemRecord], decisions: dict[str, str], metric: str | None) -> None:
        """Replace the rows by ``records`` (already filtered and sorted), keeping the cursor on the same item."""
        current = self.current_rel()
        self.metric = metric
        self.clear()
        self.columns[ColumnKey("metric")].label = Text(metric or "")
        for record in records:
            self.add_row(*self._cells(record, decisions.get(record.item.rel)), key=record.item.rel)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

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

    def _cells(self, record: ItemRecord, decision: str | None) -> tuple[Text | str, ...]:
        worst = worst_severity(record.findings)
        mark = Text(severity_mark(record), style=_SEVERITY_STYLE.get(worst, "")) if worst else Text(" ")
        metric = format_metric(record.metrics[self.metric]) if self.metric in record.metrics else ""
        return (
            mark,
            safe_text(PurePosixPath(record.item.rel).name),
            safe_text(record.item.concept),
            _decision_text(decision),
            finding_codes(record),
            metric,
        )


def _decision_text(decision: str | None) -> Text:
    if decision is None:
        return Text("")
    return Text(DECISION_MARKS.get(decision, decision), style=_DECISION_STYLE.get(decision, ""))
