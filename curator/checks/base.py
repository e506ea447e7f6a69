"""The check plugin interface.

A check has stable finding codes, default parameters as plain data, a version (bump it when ``measure`` changes so
cached metrics are recomputed) and pure functions:

- :class:`ImageCheck` — ``measure(view, params) -> metrics`` runs once per image in a scan worker on the decoded
  :class:`~curator.images.view.ImageView`; its metrics are cached. ``judge(record, params, context) -> findings`` turns
  metrics into findings after all images are measured, so it may compare with dataset statistics (e.g. the median
  sharpness) and thresholds can change without a rescan.
- :class:`DatasetCheck` — ``run(records, params, context) -> findings`` over all items (duplicates, captions, size).

Adding a check is adding one module to ``curator/checks/`` that defines a module-level ``CHECKS`` list; the registry
(:mod:`curator.checks`) discovers it.

Example::

    class TooDark(ImageCheck):
        name = "dark"
        codes = ("too_dark",)
        defaults = {"max_mean": 20.0}

        def measure(self, view, params):
            return {"mean_luma": float(view.gray.mean())}

        def judge(self, record, params, context):
            m = record.metrics["mean_luma"]
            if m < params["max_mean"]:
                return [Finding("too_dark", Severity.WARNING, f"Very dark image (mean {m:.0f})",
                                {"mean_luma": m, "threshold": params["max_mean"]})]
            return []
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from curator.findings import Finding

if TYPE_CHECKING:
    from curator.images.view import ImageView
    from curator.scan.results import ItemRecord, ScanSettings

Metrics = dict[str, Any]


@dataclass
class CheckContext:
    """What a judge or a dataset check may look at besides one record: every record and the scan settings."""

    settings: ScanSettings
    records: list[ItemRecord] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # scratch space for dataset statistics, per scan
    cache_db: Path | None = None  # the scan's SQLite cache file, where a dataset check may keep derived data

    def metric_values(self, key: str) -> list[float]:
        """All numeric values of metric ``key`` over the non-corrupt training records (for medians etc.)."""
        return [
            float(r.metrics[key])
            for r in self.records
            if key in r.metrics and isinstance(r.metrics[key], int | float)
        ]


class ImageCheck:
    """Base class of per-image checks (see module docstring)."""

    name: ClassVar[str] = ""
    codes: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1
    defaults: ClassVar[dict[str, Any]] = {}

    def measure(self, view: ImageView, params: dict[str, Any]) -> Metrics:
        """Metrics of one decoded image (runs in a worker process; must be pure and picklable in, JSON-able out)."""
        return {}

    def judge(self, record: ItemRecord, params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """Findings for one record, from its metrics (runs in the main process after every image is measured)."""
        return []


class DatasetCheck:
    """Base class of dataset-level checks: they see every record at once."""

    name: ClassVar[str] = ""
    codes: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1
    defaults: ClassVar[dict[str, Any]] = {}

    def run(self, records: list[ItemRecord], params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """Findings over the whole dataset; each finding about one item carries that item's ``path`` (its ``rel``)."""
        return []
