"""The plan a person reads (``dreamcurate plan``, the report, the TUI): the training settings applied to the curated
set, with buckets, steps, the text-encoder stop step, checkpoints, memory, time and size advice.

The arithmetic is :mod:`curator.plan.steps`'s (the same functions the trainer runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from curator.plan.buckets import BucketSettings, select_bucket
from curator.plan.steps import (
    EntryLike,
    PlanEntry,
    batches_per_epoch,
    bucket_members,
    effective_repeats,
    schedule,
    seed_formula_stop_step,
    te_stop_setting,
)
from curator.settings.config import TrainConfig

if TYPE_CHECKING:
    from curator.dataset.discover import Dataset
    from curator.plan.modelfile import ModelFacts

#: Regularization images repeated more often than this to match the training images teach little new
REG_REPEAT_WARNING = 10


@dataclass(frozen=True)
class PlanOptions:
    """What the plan depends on: the training settings (``TrainConfig``, Kohya's names, the trainer's defaults) and
    the facts around the run that are not training settings (GPUs, GPU memory and speed, base model, dataset kind).

    Example::

        settings = TrainConfig(train_batch_size=2, text_encoder_sensitivity=0.4)
        plan = build_plan(dataset, sizes, PlanOptions(settings))
        print(plan.total_steps, plan.stop_text_encoder_training)
    """

    settings: TrainConfig = field(default_factory=TrainConfig)
    num_processes: int = 1  # GPUs (processes) sharing every epoch
    vram_gb: float | None = None  # the GPU's memory, for warnings
    gpu_class: str | None = (
        None  # a row of curator.plan.estimates.ITS_TABLE (t4, rtx3060, rtx3090, a100, ...)
    )
    measured_its: float | None = None  # a measured optimizer steps / second at these settings
    model: str = "sd15"  # sd15 or sd2 (checkpoint size, text-encoder memory) when the base model is not known
    base_model: ModelFacts | None = (
        None  # the base model's real facts (curator.plan.modelfile); win over model
    )
    base_model_note: str | None = None  # why the base model's facts are missing (shown in the plan's notes)
    kind: str = (
        "style"  # what the dataset teaches: 'style', 'subject', or per concept 'cat=subject,art=style'
    )

    def bucket_settings(self) -> BucketSettings:
        """The bucket settings of these options (the settings' own)."""
        return BucketSettings.of(self.settings)

    @property
    def trains_text_encoder(self) -> bool:
        """False when the settings never train the text encoder (stop_text_encoder_training 0 or -1, or
        learning_rate_te 0, as in sd-scripts; SDXL: unless train_text_encoder, as Kohya's sdxl_train.py)."""
        family = self.base_model.family if self.base_model else ("sdxl" if self.model == "sdxl" else "sd1")
        if family == "sdxl" and not self.settings.train_text_encoder:
            return False
        return te_stop_setting(self.settings)[1] != 0

    def kind_of(self, concept: str) -> str:
        """The kind (style / subject) the size advice uses for ``concept``."""
        kinds = concept_kinds(self.kind)
        return kinds.get(concept, kinds.get("", "style"))

    def to_json(self) -> dict[str, Any]:
        """The settings (every TrainConfig field) and the context, as plain data."""
        return {
            "settings": self.settings.to_dict(),
            "num_processes": self.num_processes,
            "vram_gb": self.vram_gb,
            "gpu_class": self.gpu_class,
            "measured_its": self.measured_its,
            "model": self.model,
            "base_model": self.base_model.to_json() if self.base_model else None,
            "kind": self.kind,
        }


KINDS = ("style", "subject")


def concept_kinds(text: str) -> dict[str, str]:
    """``'style'`` -> {'': 'style'} (every concept); ``'cat=subject,art=style'`` -> per concept; a plain value
    among the pairs is the default. ValueError (one line) for an unknown kind."""
    kinds: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        concept, _, kind = part.rpartition("=")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (or CONCEPT=KIND pairs), got {part!r}")
        kinds[concept.strip()] = kind
    return kinds


@dataclass
class Plan:
    """What a run with these options will do, computed before it starts. ``to_json()`` is ``plan --json``."""

    options: PlanOptions
    buckets: list[dict]
    images: list[dict]
    concepts: list[dict]
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int
    stop_text_encoder_training: int | None
    seed_formula_stop_step: int | None
    te_explanation: str
    checkpoints: dict
    vram: dict
    time: dict
    size_advice: list[dict]
    notes: list[str]
    curation: dict | None = None  # what the curation left out (curator.review.curation.Curation.to_json)
    sizes_from: dict | None = None  # where a raw plan read the image sizes (scan cache / headers)
    held_out: list[str] = field(default_factory=list)  # images held out for the validation loss

    @property
    def vram_gb(self) -> float:
        """The memory estimate in GB."""
        return float(self.vram["total_gb"])

    def to_json(self) -> dict:
        """Plain JSON data (schema ``dreamcurate.plan/1``)."""
        return {
            "schema": "dreamcurate.plan/1",
            "options": self.options.to_json(),
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "batches_per_epoch": self.batches_per_epoch,
            "epochs": self.epochs,
            "stop_text_encoder_training": self.stop_text_encoder_training,
            "seed_formula_stop_step": self.seed_formula_stop_step,
            "te_explanation": self.te_explanation,
            "buckets": self.buckets,
            "concepts": self.concepts,
            "images": self.images,
            "checkpoints": self.checkpoints,
            "vram_gb": round(self.vram_gb, 1),
            "vram": self.vram,
            "time": self.time,
            "size_advice": self.size_advice,
            "notes": self.notes,
            "curation": self.curation,
            "held_out": self.held_out,
            **({"sizes_from": self.sizes_from} if self.sizes_from is not None else {}),
        }


def explain_te_gap(
    seed_step: int | None,
    real_step: int | None,
    train_images: int,
    per_epoch_images: int,
    options: PlanOptions,
    reg_images: int,
    batches: int,
    steps: int,
) -> str:
    """One sentence on why the tutorial's stop step (sensitivity x images x epochs) and the real one differ."""
    if not options.trains_text_encoder:
        return "The text encoder is not trained (stop step 0)."
    if real_step is None:
        return (
            "The text encoder trains to the end (no text_encoder_sensitivity or stop_text_encoder_training)."
        )
    if seed_step is None:
        return f"The text encoder stops at optimizer step {real_step}."
    reasons = _step_count_reasons(train_images, per_epoch_images, options, reg_images, batches, steps)
    if seed_step == real_step:
        # the effects can cancel out: say so rather than claim the tutorial's assumptions hold
        if reasons:
            return f"Both give {real_step}, by coincidence: {'; '.join(reasons)}."
        return (
            f"Both give {real_step}: one optimizer step per image per epoch here "
            "(repeats 1, batch 1, no accumulation, one GPU, no regularization images)."
        )
    why = "; ".join(reasons) or "the step count differs from the image count"
    return (
        f"The tutorial's formula counts one step per image per epoch ({seed_step}); the real stop step is "
        f"{real_step} because {why}."
    )


def _step_count_reasons(
    train_images: int,
    per_epoch_images: int,
    options: PlanOptions,
    reg_images: int,
    batches: int,
    steps: int,
) -> list[str]:
    """Why optimizer steps per epoch differ from the image count (empty: they are the same by construction)."""
    reasons = []
    train_with_repeats = per_epoch_images - reg_images
    if train_with_repeats != train_images:
        reasons.append(f"repeats turn {train_images} images into {train_with_repeats} per epoch")
    if reg_images:
        reasons.append(f"regularization images add {reg_images} more")
    s = options.settings
    if s.train_batch_size > 1:
        reasons.append(
            f"batch {s.train_batch_size} packs them into {batches} batches (a bucket's last batch may be short)"
        )
    divisor = s.gradient_accumulation_steps * options.num_processes
    if divisor > 1:
        reasons.append(
            f"{s.gradient_accumulation_steps} accumulation step(s) x {options.num_processes} GPU(s) "
            f"leave {steps} optimizer steps per epoch"
        )
    if not s.max_train_epochs:
        reasons.append("the run is set in steps, not epochs")
    return reasons


def _entries(dataset: Dataset, sizes: Mapping[str, tuple[int, int]], notes: list[str]) -> list[PlanEntry]:
    entries = []
    for item in dataset.items:
        size = sizes.get(item.rel)
        if not size or size[0] <= 0 or size[1] <= 0:
            notes.append(f"{item.rel}: size unknown (unreadable image), left out of the plan")
            continue
        entries.append(PlanEntry(item.rel, int(size[0]), int(size[1]), item.repeats, item.is_reg))
    return entries


def _bucket_rows(
    entries: list[PlanEntry], settings: BucketSettings
) -> tuple[list[dict], list[dict], list[str]]:
    members = bucket_members(entries, settings)
    buckets = [
        {"width": b[0], "height": b[1], "count": len(keys), "images": len(set(keys))}
        for b, keys in members.items()
    ]
    images, notes = [], []
    for e in entries:
        choice = select_bucket(e.width, e.height, settings)
        if choice.bucket[0] <= 0 or choice.bucket[1] <= 0:
            notes.append(
                f"{e.key}: {e.width}x{e.height} is smaller than one bucket step; it cannot be trained"
            )
        images.append(
            {
                "path": e.key,
                "width": e.width,
                "height": e.height,
                "bucket": list(choice.bucket),
                "resized": list(choice.resized),
                "crop_fraction": round(choice.crop_fraction, 4),
                "is_reg": e.is_reg,
            }
        )
    return buckets, images, notes


def _vram_inputs(options: PlanOptions, stop: int | None) -> Any:
    """The memory estimate's inputs: the settings, and the base model's real sizes when it is known."""
    from curator.plan import estimates

    facts, s = options.base_model, options.settings
    return estimates.VramInputs(
        s.resolution,
        s.train_batch_size,
        s.mixed_precision,
        s.gradient_checkpointing,
        s.optimizer_type == "AdamW8bit",
        options.trains_text_encoder and stop != 0,
        facts.plan_model if facts else options.model,
        unet_params=facts.unet_params if facts else None,
        te_params=facts.text_encoder_params + facts.text_encoder_2_params if facts else None,
        unet_width=facts.unet_width if facts else None,
        optimizer_type=s.optimizer_type,
        fused_backward_pass=s.fused_backward_pass,
        full_bf16=s.full_bf16,
        cache_text_encoder_outputs=s.cache_text_encoder_outputs,
        network_dim=s.network_dim if s.network_module else 0,
        conv_dim=s.conv_dim if s.network_module else 0,
    )


def build_plan(
    dataset: Dataset, sizes: Mapping[str, tuple[int, int]], options: PlanOptions | None = None
) -> Plan:
    """The plan of a :class:`~curator.dataset.discover.Dataset` whose image sizes (``rel -> (width, height)``, EXIF
    orientation applied) are known: buckets and crops, steps, text-encoder stop step, checkpoints, memory, time and
    size advice. The steps are :func:`curator.plan.steps.schedule`'s, the function the trainer runs."""
    from curator.plan import estimates
    from curator.plan.validation import held_out_items

    options = options or PlanOptions()
    s = options.settings
    notes: list[str] = []
    held = held_out_items(dataset.items, s.validation_split, s.seed)
    entries = [e for e in _entries(dataset, sizes, notes) if e.key not in held]
    if held:
        notes.append(
            f"{len(held)} images held out for the validation loss (validation_split {s.validation_split})"
        )
    settings = options.bucket_settings()
    buckets, images, bucket_notes = _bucket_rows(entries, settings)
    notes += bucket_notes
    counts = {(b["width"], b["height"]): b["count"] for b in buckets}
    batches = batches_per_epoch(counts, s.train_batch_size)
    run = schedule(s, counts, options.num_processes)
    stop = run.te_stop_step
    train_entries = [e for e in entries if not e.is_reg]
    seed_step = None
    if s.text_encoder_sensitivity and s.stop_text_encoder_training is None:
        seed_step = seed_formula_stop_step(len(train_entries), s.text_encoder_sensitivity, run.epochs)
    repeats = effective_repeats(entries)
    reg_seen = sum(n for e, n in repeats if e.is_reg)
    explanation = explain_te_gap(
        seed_step,
        stop,
        len(train_entries),
        sum(counts.values()),
        options,
        reg_seen,
        batches,
        run.steps_per_epoch,
    )
    notes += _reg_repeat_notes(repeats)
    vram_inputs = _vram_inputs(options, stop)
    vram = estimates.estimate_vram(vram_inputs, options.vram_gb)
    time = estimates.estimate_time(
        run.total_steps,
        vram_inputs,
        s.gradient_accumulation_steps,
        options.gpu_class,
        options.measured_its,
        stop,
    )
    saves = estimates.checkpoints_written(run.epochs, s.save_every_n_epochs or None)
    facts = options.base_model
    each = estimates.checkpoint_gb(
        s.save_precision,
        vram_inputs.model,
        facts.total_params if facts else None,
        facts.header_bytes if facts else 0,
    )
    if s.network_module:  # a LoRA file instead of a checkpoint
        each = estimates.lora_file_gb(
            estimates.lora_parameters(
                vram_inputs.model,
                s.network_dim,
                s.conv_dim,
                text_encoder=vram_inputs.train_text_encoder,
                unet_width=vram_inputs.unet_width,
            ),
            s.save_precision,
        )
    if options.base_model_note:
        notes.append(options.base_model_note)
    if vram_inputs.model == "sdxl":
        notes.append(f"SDXL estimates ({estimates.SDXL_SOURCES})")
    concepts = _concept_rows(dataset, repeats)
    advice = [
        estimates.size_advice(c["name"], c["images"], options.kind_of(c["name"])).to_json()
        for c in concepts
        if not c["is_reg"]
    ]
    return Plan(
        options=options,
        buckets=buckets,
        images=images,
        concepts=concepts,
        batches_per_epoch=batches,
        steps_per_epoch=run.steps_per_epoch,
        total_steps=run.total_steps,
        epochs=run.epochs,
        stop_text_encoder_training=stop,
        seed_formula_stop_step=seed_step,
        te_explanation=explanation,
        checkpoints={
            "count": saves,
            "each_gb": round(each, 2),
            "each_bytes": round(each * 1e9),
            "total_gb": round(saves * each, 1),
            "total_bytes": round(saves * each * 1e9),
        },
        vram=vram.to_json(),
        time=time.to_json(),
        size_advice=advice,
        notes=notes,
        held_out=sorted(held),
    )


def _reg_repeat_notes(repeats: list[tuple[Any, int]]) -> list[str]:
    """A warning when regularization images are repeated more than :data:`REG_REPEAT_WARNING` times to match."""
    reg = [n for e, n in repeats if e.is_reg]
    if not reg or max(reg) <= REG_REPEAT_WARNING:
        return []
    return [
        f"regularization images are repeated up to {max(reg)}x to match the training images: "
        f"add regularization images (more than {REG_REPEAT_WARNING}x teaches little new)"
    ]


def _concept_rows(dataset: Dataset, repeats: list[tuple[EntryLike, int]]) -> list[dict]:
    seen: dict[str, int] = {e.key: n for e, n in repeats}
    rows = []
    for concept in dataset.concepts:
        keys = [item.rel for item in concept.items]
        rows.append(
            {
                "name": concept.name,
                "repeats": concept.repeats,
                "is_reg": concept.is_reg,
                "images": len(keys),
                "per_epoch": sum(seen.get(k, 0) for k in keys),
            }
        )
    return rows
