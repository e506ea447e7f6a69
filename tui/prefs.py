"""What the review app remembers in the workspace between sessions: the plan-tab values, the base model and the
export folder (``Workspace.review_prefs``, JSON, written atomically). Headless (no textual).

Example::

    prefs = load_prefs(workspace)
    prefs.base_model = "sd15.safetensors"
    save_prefs(workspace, prefs)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from curator.dataset.workspace import Workspace
from curator.fsutil import atomic_write_text
from tui.state import PlanInputs


@dataclass
class ReviewPrefs:
    """The remembered values (None / '' where nothing was remembered)."""

    plan: PlanInputs | None = None
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


def _plan(data: Any) -> PlanInputs | None:
    if not isinstance(data, dict):
        return None
    known = {f.name: f.type for f in fields(PlanInputs)}
    defaults = PlanInputs()
    values = {}
    for name in known:
        value, default = data.get(name), getattr(defaults, name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = type(default)(value)
    inputs = PlanInputs(**values)
    return inputs if inputs.problem() is None else None


def save_prefs(workspace: Workspace, prefs: ReviewPrefs) -> None:
    """Write ``prefs`` (creating the workspace folder when needed)."""
    data = {**prefs.extra, "base_model": prefs.base_model, "export_dir": prefs.export_dir}
    if prefs.plan is not None:
        data["plan"] = asdict(prefs.plan)
    workspace.ensure()
    atomic_write_text(workspace.review_prefs, json.dumps(data, indent=1) + "\n")
