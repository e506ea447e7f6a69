"""Findings: what a check reports about an item or about the whole dataset.

Example::

    >>> f = Finding("blurry", Severity.WARNING, "Image looks out of focus", {"laplacian_var": 12.0, "threshold": 40.0})
    >>> f.to_json()["severity"]
    'warning'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How bad a finding is. ``error`` items are dropped by default on export; ``warning`` items are kept."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for error, 1 for warning, 0 for info (for sorting and ``--fail-on``)."""
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class Finding:
    """One problem found by a check.

    ``code`` is stable (scripts match on it), ``message`` is one line a person understands, ``evidence`` holds the
    metric and its threshold, or the other file's path, or the offending tag: plain JSON-able data. ``path`` is the
    dataset-relative path of the item the finding is about (None for dataset-wide findings).
    """

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The finding as plain JSON data (the scan JSON schema's ``findings[]`` entry)."""
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": self.evidence,
        }
        if self.path is not None:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_json`."""
        return cls(
            code=data["code"],
            severity=Severity(data["severity"]),
            message=data["message"],
            evidence=dict(data.get("evidence") or {}),
            path=data.get("path"),
        )

    def with_path(self, path: str) -> Finding:
        """A copy of this finding attached to ``path``."""
        return Finding(self.code, self.severity, self.message, self.evidence, path)
