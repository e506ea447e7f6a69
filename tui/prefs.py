"""What the review app remembers in the workspace between sessions: the plan-tab values, the base model and the
export folder (``Workspace.review_prefs``, JSON, written atomically). Headless (no textual).

Example::

    prefs = load_prefs(workspace)
    prefs.base_model = "sd15.safetensors"
    save_prefs(workspace, prefs)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from curator.dataset.workspace import Workspace
from curator.fsutil import atomic_write_text
from curator.settings.config import ConfigError, TrainConfig
from tui.state import PLAN_TAB_FIELDS


@dataclass
class ReviewPrefs:
    """The remembered values (None / '' where nothing was remembered)."""

    plan: TrainConfig | None = None  # the plan tab's settings (its fields; the rest keep their defaults)
    base_model: str = ""
    export_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer version wrote: kept, not lost


def load_prefs(workspace: Workspace) -> ReviewPrefs:
    """The remembered values; a missing or damaged file remembers nothing (it never stops the app)."""
    try:
        data = json.loads(workspace.review_prefs.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ReviewPrefs()
    if not isinstance(data, dict):
        return ReviewPrefs()
    return ReviewPrefs(
        plan=_plan(data.get("plan")),
        base_model=str(data.get("base_model") or ""),
        export_dir=str(data.get("export_dir") or ""),
        extra={k: v for k, v in data.items() if k not in ("plan", "base_model", "export_dir")},
    )


def _plan(data: Any) -> TrainConfig | None:
    """The remembered plan-tab settings, checked as untrusted data (a bad value remembers nothing)."""
    if not isinstance(data, dict):
        return None
    values = {name: data[name] for name in PLAN_TAB_FIELDS if name in data}
    try:
        return TrainConfig.from_dict(values, source="review prefs").validate(check_paths=False)
    except ConfigError:
        return None


def save_prefs(workspace: Workspace, prefs: ReviewPrefs) -> None:
    """Write ``prefs`` (creating the workspace folder when needed)."""
    data = {**prefs.extra, "base_model": prefs.base_model, "export_dir": prefs.export_dir}
    if prefs.plan is not None:
        data["plan"] = {name: getattr(prefs.plan, name) for name in PLAN_TAB_FIELDS}
    workspace.ensure()
    atomic_write_text(workspace.review_prefs, json.dumps(data, indent=1) + "\n")
