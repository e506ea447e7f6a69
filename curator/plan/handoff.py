"""The training plan of what an export keeps, as the JSON data the report and ``train.toml`` use.

The arithmetic is :mod:`curator.plan.steps`'s (``build_plan`` and the step functions the trainer runs); this module only
feeds it the kept items and the chosen settings.

Example::

    data = plan_json(result, kept={"10_cat/a.png", ...}, inputs=PlanInputs(batch=2, epochs=20))
    data["total_steps"], data["stop_text_encoder_training"]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from curator.dataset.discover import Concept, Dataset
from curator.plan.buckets import BucketSettings
from curator.scan.results import ScanResult


@dataclass
class PlanInputs:
    """The training settings the plan depends on (named after the trainer's fields)."""

    batch: int = 1  # train_batch_size
    epochs: int | None = 200  # max_train_epochs (None or 0: steps only)
    steps: int | None = None  # max_train_steps, used when epochs is None or 0 (epochs win, as in Kohya)
    grad_accum: int = 1  # gradient_accumulation_steps
    sensitivity: float | None = (
        None  # text-encoder sensitivity (fraction of all steps); None: trains to the end
    )
    te_stop: int | None = None  # explicit stop_text_encoder_training step (wins over sensitivity)
    resolution: int | None = None  # None: the scan's
    save_precision: str = "float"  # save_precision: float, fp16 or bf16 (checkpoint size)
    base_model: str = ""  # the base model's path: its real sizes for memory and disk (empty: SD 1.5's)
    network_dim: int = 0  # network_dim of a LoRA run (0: DreamBooth)
    conv_dim: int = 0  # conv_dim of a LoRA run


def basic_plan(result: ScanResult, kept: set[str] | None, inputs: PlanInputs) -> dict[str, Any]:
    """Steps per epoch, total steps, the text-encoder stop step and the buckets of the kept items."""
    from curator.plan import steps as plan

    s = result.settings
    settings = BucketSettings.of(s, resolution=inputs.resolution or s.resolution)
    entries = [
        plan.PlanEntry(r.item.rel, r.width, r.height, r.item.repeats, r.item.is_reg)
        for r in result.records
        if r.decoded and r.width > 0 and r.height > 0 and (kept is None or r.item.rel in kept)
    ]
    counts = plan.bucket_counts(entries, settings)
    per_epoch = plan.steps_per_epoch(counts, inputs.batch, inputs.grad_accum)
    # epochs win over steps, as in Kohya and the trainer
    total = plan.total_steps(per_epoch, inputs.epochs or None, inputs.steps or None)
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


def kept_dataset(dataset: Dataset, kept: set[str] | None) -> Dataset:
    """A copy of ``dataset`` with only the ``kept`` items (all of them when ``kept`` is None)."""
    if kept is None:
        return dataset
    concepts = [
        Concept(c.name, c.repeats, c.folder, c.is_reg, [i for i in c.items if i.rel in kept])
        for c in dataset.concepts
    ]
    return replace(dataset, concepts=concepts, findings=list(dataset.findings))


def full_plan(result: ScanResult, kept: set[str] | None, inputs: PlanInputs) -> dict[str, Any]:
    """The planner's whole plan (``dreamcurate plan --json``) of the kept items with these settings."""
    from curator.plan.modelfile import facts_for_plan
    from curator.plan.steps import PlanOptions, build_plan

    s = result.settings
    facts, note = facts_for_plan(inputs.base_model)
    options = PlanOptions(
        resolution=inputs.resolution or s.resolution,
        batch_size=inputs.batch,
        gradient_accumulation_steps=inputs.grad_accum,
        max_train_epochs=inputs.epochs or None,
        max_train_steps=inputs.steps or None,
        te_sensitivity=inputs.sensitivity,
        stop_text_encoder_training=inputs.te_stop,
        min_bucket_reso=s.min_bucket_reso,
        max_bucket_reso=s.max_bucket_reso,
        bucket_reso_steps=s.bucket_reso_steps,
        bucket_no_upscale=s.bucket_no_upscale,
        save_precision=inputs.save_precision,
        base_model=facts,
        base_model_note=note,
        network_dim=inputs.network_dim,
        conv_dim=inputs.conv_dim,
    )
    sizes = {r.item.rel: (r.width, r.height) for r in result.records if r.decoded}
    data = build_plan(kept_dataset(result.dataset, kept), sizes, options).to_json()
    data["max_train_epochs"] = inputs.epochs or 0
    data["max_train_steps"] = inputs.steps or 0
    if data.get("stop_text_encoder_training") is None:
        data.pop("stop_text_encoder_training", None)
    return data


def keep_tokens_advice(result: ScanResult, kept: set[str] | None = None) -> dict[str, int]:
    """The caption audit's advised ``keep_tokens`` per training concept, over the kept items ({} when the audit
    cannot run)."""
    try:
        from curator.captions.audit import AuditSettings, audit_captions, load_workspace_captions
        from curator.dataset.workspace import Workspace

        items = [r.item for r in result.records if not r.item.is_reg and (kept is None or r.item.rel in kept)]
        workspace = Workspace.for_dataset(result.dataset.root, result.settings.workspace)
        audit = audit_captions(
            load_workspace_captions(items, workspace), AuditSettings(trigger=result.settings.trigger)
        )
        return {name: c.keep_tokens.n for name, c in audit.concepts.items()}
    except Exception:  # advice only: an export without it is still right
        return {}


def plan_json(
    result: ScanResult, kept: set[str] | None = None, inputs: PlanInputs | None = None
) -> dict[str, Any]:
    """The plan of the kept items: the planner's :func:`full_plan`, else the headline numbers of
    :func:`basic_plan`, else {} (the plan is an extra for the report and the export, never a reason for them to
    fail)."""
    inputs = inputs or PlanInputs()
    for make in (full_plan, basic_plan):
        try:
            return make(result, kept, inputs)
        except Exception:  # a planner problem must not stop a report or an export
            continue
    return {}
