"""Scan settings and results, and the versioned JSON schema of ``dreamcurate scan --json``.

Example::

    result = scan(Path("train"), ScanSettings(resolution=768))
    errors = [f for f in result.all_findings() if f.severity is Severity.ERROR]
    json.dump(result.to_json(), sys.stdout)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.dataset.discover import Dataset, Item
from curator.findings import Finding, Severity
from curator.settings.config import TrainConfig

SCHEMA = "dreamcurate.scan/1"


#: The training settings' defaults, which the scan assumes unless told otherwise
TRAINING_DEFAULTS = TrainConfig()


@dataclass
class ScanSettings:
    """Everything a scan depends on besides the files. Defaults follow the seed tutorial and Kohya sd-scripts."""

    # the training settings' own defaults (curator.settings.config.TrainConfig): one default each
    resolution: int = TRAINING_DEFAULTS.resolution  # training resolution; too_small fires below it
    min_bucket_reso: int = TRAINING_DEFAULTS.min_bucket_reso
    max_bucket_reso: int = TRAINING_DEFAULTS.max_bucket_reso
    bucket_reso_steps: int = TRAINING_DEFAULTS.bucket_reso_steps
    bucket_no_upscale: bool = TRAINING_DEFAULTS.bucket_no_upscale
    caption_extension: str | None = None  # None: detect (.txt default, .caption recognised)
    trigger: str | None = None  # None: the concept name from the folder
    max_token_length: int = TRAINING_DEFAULTS.max_token_length  # 75, 150 or 225 CLIP tokens
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    workspace: Path | None = None  # None: DATASET/.dreamcurate
    reg_root: Path | None = None
    clip_model: str | None = None  # open_clip architecture name, only with clip_weights
    clip_weights: Path | None = None  # local open_clip checkpoint; never downloaded
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-check parameter overrides, by name
    progress: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` with one line naming the bad setting (bucket rules are those of
        :class:`curator.plan.buckets.BucketSettings`, which the trainer shares)."""
        from curator.plan.buckets import BucketSettings

        BucketSettings.of(self)
        if self.max_token_length not in (75, 150, 225):
            raise ValueError(f"max_token_length must be 75, 150 or 225, got {self.max_token_length}")
        if (self.clip_model is None) != (self.clip_weights is None):  # one without the other would be ignored
            raise ValueError(
                "CLIP features need both --clip-model (architecture, e.g. ViT-B-32) and --clip-weights (its local file)"
            )
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    def check_params(self, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """The defaults of check ``name`` updated with this run's overrides."""
        merged = dict(defaults)
        merged.update(self.params.get(name, {}))
        return merged


@dataclass
class ItemRecord:
    """One item after scanning: its metrics (from every image check, cached) and its findings."""

    item: Item
    metrics: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    width: int = 0
    height: int = 0
    decoded: bool = False  # False when the image could not be decoded (corrupt, bomb, unreadable)

    @property
    def worst(self) -> Severity | None:
        """The most severe finding's severity, or None without findings."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def to_json(self) -> dict[str, Any]:
        """The ``items[]`` entry of the scan JSON."""
        return {
            "path": self.item.rel,
            "concept": self.item.concept,
            "repeats": self.item.repeats,
            "is_reg": self.item.is_reg,
            "caption": str(self.item.caption_path) if self.item.caption_path else None,
            "width": self.width,
            "height": self.height,
            "metrics": self.metrics,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class ScanResult:
    """A whole scan: the dataset, one record per item, dataset-wide findings, and cache statistics."""

    dataset: Dataset
    settings: ScanSettings
    records: list[ItemRecord]
    findings: list[Finding] = field(default_factory=list)  # dataset-wide (no single item)
    analysed: int = 0  # images decoded in this run
    cached: int = 0  # images whose metrics came from the cache
    seconds: float = 0.0

    def record(self, rel: str) -> ItemRecord:
        """The record of the item with dataset-relative path ``rel``."""
        for r in self.records:
            if r.item.rel == rel:
                return r
        raise KeyError(rel)

    def all_findings(self) -> list[Finding]:
        """Every finding, per-item and dataset-wide."""
        return [f for r in self.records for f in r.findings] + list(self.findings)

    def counts(self) -> dict[str, int]:
        """Number of findings per code."""
        out: dict[str, int] = {}
        for f in self.all_findings():
            out[f.code] = out.get(f.code, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON document of ``scan --json``."""
        return {
            "schema": SCHEMA,
            "dataset": {
                "root": str(self.dataset.root),
                "layout": self.dataset.layout,
                "reg_root": str(self.dataset.reg_root) if self.dataset.reg_root else None,
                "caption_extension": self.dataset.caption_extension,
                "concepts": [
                    {"name": c.name, "repeats": c.repeats, "is_reg": c.is_reg, "images": len(c.items)}
                    for c in self.dataset.concepts
                ],
            },
            "summary": {
                "items": len(self.records),
                "analysed": self.analysed,
                "cached": self.cached,
                "seconds": round(self.seconds, 3),
                "counts": self.counts(),
            },
            "findings": [f.to_json() for f in self.findings],
            "items": [r.to_json() for r in self.records],
        }
