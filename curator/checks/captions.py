"""The ``captions`` dataset check: caption files and tags, reported by ``scan`` like every other finding.

It runs the caption audit of :mod:`curator.captions.audit` (the same one ``dreamcurate tags`` shows) over the scanned
items. Parameters (override per scan with ``ScanSettings.params["captions"]``) are the fields of
:class:`~curator.captions.audit.AuditSettings`; ``trigger`` and ``max_token_length`` come from the scan settings.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar

from curator.captions.audit import AuditSettings, audit_captions, load_captions
from curator.captions.findings import CODES
from curator.checks.base import CheckContext, DatasetCheck
from curator.findings import Finding
from curator.scan.cache import open_token_cache

if TYPE_CHECKING:
    from curator.scan.results import ItemRecord


def audit_settings(params: dict[str, Any], context: CheckContext) -> AuditSettings:
    """The audit settings of a scan: check parameters, then the scan's trigger and max_token_length."""
    known = {f.name for f in fields(AuditSettings)}
    values = {k: v for k, v in params.items() if k in known}
    if "conflicts" in values:
        values["conflicts"] = tuple(tuple(pair) for pair in values["conflicts"])
    values.setdefault("trigger", context.settings.trigger)
    values.setdefault("max_token_length", context.settings.max_token_length)
    return AuditSettings(**values)


class CaptionsCheck(DatasetCheck):
    """Caption files (missing, empty, not UTF-8, multi-line), CLIP length, duplicates, trigger, keep_tokens,
    rare / everywhere / conflicting tags. Example: ``CaptionsCheck().run(records, {}, context)``."""

    name = "captions"
    codes = CODES
    version = 1
    defaults: ClassVar[dict[str, Any]] = {}

    def run(self, records: list[ItemRecord], params: dict[str, Any], context: CheckContext) -> list[Finding]:
        """Audit the captions of every record's item."""
        settings = audit_settings(params, context)
        with open_token_cache(context.cache_db) as token_cache:
            audit = audit_captions(load_captions([r.item for r in records], token_cache), settings)
        context.cache["caption_audit"] = (
            audit  # the report and the TUI may show the tables without re-reading
        )
        return audit.findings


CHECKS = [CaptionsCheck()]
