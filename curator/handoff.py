"""The training plan of what an export keeps, as the JSON data the report and ``train.toml`` use.

The arithmetic is :mod:`curator.plan`'s (the functions the trainer runs); this module only feeds it the kept
items and the chosen settings.

Example::

    data = plan_json(result, kept={"10_cat/a.png", ...}, inputs=PlanInputs(batch=2, epochs=20))
    data["total_steps"], data["stop_text_encoder_training"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curator.buckets import BucketSettings
from curator.results import ScanResult


@dataclass
class PlanInputs:
    """The training settings the plan depends on (named after the trainer's fields)."""

    batch: int = 1  # train_batch_size
    epochs: int | None = 200  # max_train_epochs (None or 0: steps only)
    steps: int | None = None  # max_train_steps (None or 0: epochs only; with both, the earlier limit wins)
    grad_accum: int = 1  # gradient_accumulation_steps
    sensitivity: float | None = (
        None  # text-encoder sensitivity (fraction of all steps); None: trains to the end
    )
    te_stop: int | None = None  # explicit stop_text_encoder_training step (wins over sensitivity)
    resolution: int | None = None  # None: the scan's


def basic_plan(result: ScanResult, kept: set[str] | None, inputs: PlanInputs) -> dict[str, Any]:
    """Steps per epoch, total steps, the text-encoder stop step and the buckets of the kept items."""
    from curator import plan

    s = result.settings
    settings = BucketSettings(
        inputs.resolution or s.resolution,
        s.min_bucket_reso,
        s.max_bucket_reso,
        s.bucket_reso_steps,
        s.bucket_no_upscale,
    )
    entries = [
        plan.PlanEntry(r.item.rel, r.width, r.height, r.item.repeats, r.item.is_reg)
        for r in result.records
        if r.decoded and r.width > 0 and r.height > 0 and (kept is None or r.item.rel in kept)
    ]
    counts = plan.bucket_counts(entries, settings)
    per_epoch = plan.steps_per_epoch(counts, inputs.batch, inputs.grad_accum)
    limits = []
    if inputs.epochs:
        limits.append(inputs.epochs * per_epoch)
    if inputs.steps:
        limits.append(inputs.steps)
    total = min(limits) if limits else plan.total_steps(per_epoch)
    stop = plan.text_encoder_stop_step(total, inputs.sensitivity, inputs.te_stop)
    images = sum(not e.is_reg for e in entries)
    data: dict[str, Any] = {
        "training_images": images,
        "regularization_images": sum(e.is_reg for e in entries),
        "train_batch_size": inputs.batch,
        "gradient_accumulation_steps": inputs.grad_accum,
        "steps_per_epoch": per_epoch,
        "max_train_epochs": inputs.epochs or 0,
        "max_train_steps": inputs.steps or 0,
        "total_steps": total,
        "buckets": [{"width": w, "height": h, "count": n} for (w, h), n in counts.items()],
    }
    if stop is not None:
        data["stop_text_encoder_training"] = stop
    if inputs.sensitivity and inputs.epochs:
        data["seed_formula_stop_step"] = plan.seed_formula_stop_step(
            images, inputs.sensitivity, inputs.epochs
        )
    return data


def plan_json(
    result: ScanResult, kept: set[str] | None = None, inputs: PlanInputs | None = None
) -> dict[str, Any]:
    """:func:`basic_plan`, or {} when it cannot be computed (the plan is an extra for the report and the export,
    never a reason for them to fail)."""
    try:
        return basic_plan(result, kept, inputs or PlanInputs())
    except Exception:
        return {}
