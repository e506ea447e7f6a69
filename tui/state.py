"""Domain state of the review app as plain dataclasses, and the pure functions that turn a scan into table rows.

Nothing here imports textual: the widgets read these objects and the tests can check them directly.

Example::

    view = BrowserView(code="blurry", sort_key="laplacian_var")
    rows = visible_records(result.records, view, decisions={"a.png": "drop"})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord, ScanResult
from curator.settings.config import TrainConfig

#: Sort keys that are not metrics.
NAME_SORT = "name"
SEVERITY_SORT = "severity"
#: The filter value that means "items with any finding".
ANY_FINDING = "*"

SEVERITY_MARKS = {Severity.ERROR: "✖", Severity.WARNING: "▲", Severity.INFO: "·"}
DECISION_MARKS = {"keep": "keep", "drop": "DROP"}


#: The training settings the plan tab edits (TrainConfig's names); the rest keep their values
PLAN_TAB_FIELDS = (
    "max_train_epochs",
    "train_batch_size",
    "resolution",
    "text_encoder_sensitivity",
    "keep_tokens",
    "min_bucket_reso",
    "max_bucket_reso",
)


@dataclass
class BrowserView:
    """What the browser shows: a finding-code filter, a concept filter and a sort order (all optional)."""

    code: str | None = None  # a finding code, ANY_FINDING, or None for every item
    concept: str | None = None  # a concept name, or None for every concept
    sort_key: str = NAME_SORT  # NAME_SORT, SEVERITY_SORT, or a metric name
    descending: bool = False  # sort direction


def _default(name: str) -> Any:
    """The one default of a training setting (``curator.settings.config.TrainConfig``)."""
    return TrainConfig.__dataclass_fields__[name].default


@dataclass
class TagEditForm:
    """One batch edit as the tags panel's form describes it (``dedupe``, ``front``, ``trigger``, ``replace``,
    ``remove``, with up to two tag arguments)."""

    operation: str
    first: str = ""
    second: str = ""
    concept: str | None = None  # the concept whose captions change (None: every training concept)


@dataclass
class TrainState:
    """What the train panel shows about the running (or last) training job."""

    running: bool = False
    step: int = 0
    total: int = 0
    losses: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)  # validation losses, one per validation event
    last_sample: Path | None = None
    status: str = "idle"
    error: str | None = None  # the message of the trainer's error event, when it sent one


def worst_severity(findings: list[Finding]) -> Severity | None:
    """The most severe severity among ``findings`` (None when empty)."""
    if not findings:
        return None
    return max((f.severity for f in findings), key=lambda s: s.rank)


def severity_mark(record: ItemRecord) -> str:
    """One-character mark of the record's worst finding (blank without findings)."""
    worst = worst_severity(record.findings)
    return SEVERITY_MARKS.get(worst, " ") if worst else " "


def finding_codes(record: ItemRecord) -> str:
    """The record's finding codes, comma separated, without repeats, in finding order."""
    return ", ".join(dict.fromkeys(f.code for f in record.findings))


def fit_codes(codes: list[str], width: int) -> str:
    """``codes`` joined by ", " in at most ``width`` cells: as many as fit, then ``+N`` for the rest (the first code
    is cut with an ellipsis when even it does not fit)."""
    text = ", ".join(codes)
    if len(text) <= width or not codes:
        return text
    for shown in range(len(codes) - 1, 0, -1):
        head = ", ".join(codes[:shown]) + f" +{len(codes) - shown}"
        if len(head) <= width:
            return head
    more = f" +{len(codes) - 1}" if len(codes) > 1 else ""
    room = max(width - len(more) - 1, 1)
    return codes[0][:room] + "…" + more


def metric_keys(records: list[ItemRecord]) -> list[str]:
    """Every numeric metric name present in ``records``, sorted."""
    keys: set[str] = set()
    for record in records:
        keys.update(k for k, v in record.metrics.items() if _is_number(v))
    return sorted(keys)


def codes_present(result: ScanResult) -> list[str]:
    """Finding codes attached to items, sorted."""
    return sorted({f.code for r in result.records for f in r.findings})


def concepts_present(result: ScanResult) -> list[str]:
    """Concept names of the dataset, in dataset order."""
    return list(dict.fromkeys(r.item.concept for r in result.records))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sort_value(record: ItemRecord, key: str) -> tuple[int, Any]:
    """A sort key that puts records without the metric last whatever the direction."""
    if key == NAME_SORT:
        return (0, record.item.rel)
    if key == SEVERITY_SORT:
        worst = worst_severity(record.findings)
        return (0, (worst.rank + 1) if worst else 0)
    value = record.metrics.get(key)
    return (0, value) if _is_number(value) else (1, 0)


def matches(record: ItemRecord, view: BrowserView) -> bool:
    """Whether ``record`` passes the view's filters."""
    if view.concept is not None and record.item.concept != view.concept:
        return False
    if view.code == ANY_FINDING:
        return bool(record.findings)
    if view.code is not None:
        return any(f.code == view.code for f in record.findings)
    return True


def visible_records(records: list[ItemRecord], view: BrowserView) -> list[ItemRecord]:
    """The records the browser shows for ``view``: filtered, then sorted (stable, name as tie-break); records
    without the sort metric come last whatever the direction."""
    shown = sorted((r for r in records if matches(r, view)), key=lambda r: r.item.rel)
    keyed = [(_sort_value(r, view.sort_key), r) for r in shown]
    present = [(value, r) for (missing, value), r in keyed if not missing]
    present.sort(key=lambda pair: pair[0], reverse=view.descending)
    return [r for _, r in present] + [r for (missing, _), r in keyed if missing]


def duplicate_note(record: ItemRecord) -> str:
    """How close a duplicate is to its keeper, from its finding's evidence ('' for the keeper itself)."""
    for finding in record.findings:
        if finding.code == "exact_duplicate":
            return f"exact ({finding.evidence.get('match', 'same file')})"
        if finding.code == "near_duplicate":
            parts = [
                f"{k} {finding.evidence[k]}" for k in ("phash", "dhash", "cosine") if k in finding.evidence
            ]
            return ", ".join(parts) or "same cluster"
    return ""


def format_metric(value: Any) -> str:
    """A short, stable text of a metric value for tables and the preview."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
