"""Training arithmetic: the one source of truth for buckets, steps and the text-encoder stop step.

The planner (``dreamcurate plan``) predicts with these functions and the trainer iterates with them, so the step
count it runs equals the plan by construction. The arithmetic follows Kohya sd-scripts (``library/train_util.py``:
``DreamBoothDataset``, ``BucketManager``, ``BaseDataset.make_buckets`` / ``shuffle_buckets``; ``train_db.py``):

- every image lands in one bucket and is added ``repeats`` times; regularization images are repeated, in order,
  until they match the training images (with repeats) one for one;
- an epoch is the list of batches: each bucket's members chunked by ``batch_size`` (the last batch of a bucket may
  be short), so batches per epoch = sum over buckets of ceil(count / batch);
- optimizer steps per epoch = ceil(batches / processes / gradient accumulation) and
  ``max_train_steps = max_train_epochs x steps per epoch``.

Example::

    >>> entries = [PlanEntry("a.png", 512, 512, repeats=3), PlanEntry("b.png", 1000, 500, repeats=3)]
    >>> counts = bucket_counts(entries, BucketSettings(resolution=512))
    >>> counts
    {(512, 512): 3, (704, 320): 3}
    >>> spe = steps_per_epoch(counts, batch_size=2)   # ceil(3/2) + ceil(3/2) = 4 batches
    >>> spe, total_steps(spe, max_train_epochs=10), text_encoder_stop_step(40, sensitivity=0.4)
    (4, 40, 16)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from curator.plan.buckets import BucketChoice, BucketSettings, select_bucket

if TYPE_CHECKING:
    from curator.dataset.discover import Dataset
    from curator.plan.modelfile import ModelFacts

#: Kohya's ``--max_train_steps`` default, used when neither epochs nor steps are given
KOHYA_DEFAULT_MAX_TRAIN_STEPS = 1600

Bucket = tuple[int, int]


class EntryLike(Protocol):
    """What the step math needs of an image: a stable key, its size, its repeats, whether it is regularization."""

    @property
    def key(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def repeats(self) -> int: ...
    @property
    def is_reg(self) -> bool: ...


@dataclass(frozen=True)
class PlanEntry:
    """One image as the step math sees it.

    ``key`` identifies the image (the item's ``rel``); ``width`` / ``height`` are the size training reads;
    ``repeats`` comes from the ``N_name`` folder. Entries are given in Kohya's registration order: training
    concepts in folder order, images sorted within a folder, regularization images after.
    """

    key: str
    width: int
    height: int
    repeats: int = 1
    is_reg: bool = False


@dataclass(frozen=True)
class Batch:
    """One batch of an epoch: its bucket (width, height) and the keys of its members (a key may repeat)."""

    bucket: Bucket
    keys: tuple[str, ...]


def effective_repeats(entries: Iterable[EntryLike]) -> list[tuple[EntryLike, int]]:
    """Each used entry with the number of times it is seen per epoch, in Kohya's registration order.

    Training entries keep their folder repeats (a repeat count below 1 drops the entry, as Kohya ignores such a
    folder). Regularization entries are matched to the number of training images with repeats like Kohya's
    ``DreamBoothDataset``: a first pass takes reg images in order with their own repeats until the total reaches
    the training count (later reg images are not used at all); further passes add one repeat to each reg image
    in turn until it does. Without training images no reg image is used.
    """
    train: list[tuple[EntryLike, int]] = []
    regs: list[EntryLike] = []
    for entry in entries:
        if entry.repeats < 1:
            continue
        if entry.is_reg:
            regs.append(entry)
        else:
            train.append((entry, entry.repeats))
    num_train = sum(r for _, r in train)
    reg_repeats: list[list] = []  # [entry, repeats], mutable: later passes add repeats
    seen = 0
    first_pass = True
    while regs and seen < num_train:
        for index, entry in enumerate(regs):
            if first_pass:
                reg_repeats.append([entry, entry.repeats])
                seen += entry.repeats
            else:
                reg_repeats[index][1] += 1
                seen += 1
            if seen >= num_train:
                break
        first_pass = False
    return train + [(entry, count) for entry, count in reg_repeats]


def bucket_assignments(entries: Iterable[EntryLike], settings: BucketSettings) -> dict[str, BucketChoice]:
    """Key -> the bucket choice (bucket, resized size, crop fraction) of every entry."""
    return {e.key: select_bucket(e.width, e.height, settings) for e in entries}


def bucket_members(entries: Iterable[EntryLike], settings: BucketSettings) -> dict[Bucket, list[str]]:
    """Bucket -> member keys for one epoch, before any shuffle, in Kohya's order.

    Buckets sorted by (width, height) (Kohya's ``BucketManager.sort``); within a bucket, entries in registration
    order, each key repeated ``repeats`` times in a row. Only buckets with members appear. Entries whose bucket has
    a zero side (possible only with ``bucket_no_upscale`` and images smaller than one step) are left out.
    """
    members: dict[Bucket, list[str]] = {}
    for entry, count in effective_repeats(list(entries)):
        bucket = select_bucket(entry.width, entry.height, settings).bucket
        if bucket[0] <= 0 or bucket[1] <= 0:
            continue
        members.setdefault(bucket, []).extend([entry.key] * count)
    return {bucket: members[bucket] for bucket in sorted(members)}


def bucket_counts(entries: Iterable[EntryLike], settings: BucketSettings) -> dict[Bucket, int]:
    """Bucket -> images per epoch (images x repeats, regularization matched as Kohya does), sorted by bucket."""
    return {bucket: len(keys) for bucket, keys in bucket_members(entries, settings).items()}


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def batches_per_epoch(bucket_image_counts: Mapping[Bucket, int], batch_size: int) -> int:
    """The number of batches in one epoch: sum over buckets of ceil(count / batch_size) (a batch never mixes
    buckets, so every bucket's last batch may be short)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return sum(_ceil_div(count, batch_size) for count in bucket_image_counts.values() if count > 0)


def steps_per_epoch(
    bucket_image_counts: Mapping[Bucket, int],
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
) -> int:
    """Optimizer steps per epoch as Kohya's ``train_db.py`` computes them:
    ceil(batches per epoch / num_processes / gradient_accumulation_steps)."""
    if gradient_accumulation_steps < 1 or num_processes < 1:
        raise ValueError("gradient_accumulation_steps and num_processes must be at least 1")
    batches = batches_per_epoch(bucket_image_counts, batch_size)
    return _ceil_div(batches, num_processes * gradient_accumulation_steps)


def total_steps(
    steps_per_epoch: int, max_train_epochs: int | None = None, max_train_steps: int | None = None
) -> int:
    """Total optimizer steps: ``max_train_epochs`` x steps per epoch when epochs are given (they override steps, as
    in Kohya), else ``max_train_steps``, else Kohya's default of 1600."""
    if max_train_epochs is not None:
        return max_train_epochs * steps_per_epoch
    if max_train_steps is not None:
        return max_train_steps
    return KOHYA_DEFAULT_MAX_TRAIN_STEPS


def epochs_for_steps(total: int, steps_per_epoch: int) -> int:
    """How many epochs a run of ``total`` steps starts (the last one may be cut short): ceil(total / per epoch)."""
    return _ceil_div(total, max(1, steps_per_epoch))


def _round_half_up(value: float) -> int:
    # Half up rather than Python's half-to-even, and tolerant of float noise (0.4 * 61600 = 24640.000000000004).
    return math.floor(round(value, 9) + 0.5)


def text_encoder_stop_step(
    total_steps: int, sensitivity: float | None = None, explicit: int | None = None
) -> int | None:
    """Kohya's ``stop_text_encoder_training``: the optimizer step at which the text encoder stops learning.

    ``explicit`` wins; else round(``sensitivity`` x ``total_steps``) (half up); None when neither is given (the text
    encoder trains to the end). The text encoder learns while ``global_step < stop``.
    """
    if explicit is not None:
        return int(explicit)
    if sensitivity is None:
        return None
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("text-encoder sensitivity must be between 0 and 1")
    return _round_half_up(sensitivity * total_steps)


def seed_formula_stop_step(images: int, sensitivity: float, epochs: int) -> int:
    """The seed tutorial's stop step: sensitivity x images x max epochs (308 images, 0.4, 200 epochs -> 24640).

    It counts one step per image per epoch, i.e. it assumes repeats 1, batch 1, no gradient accumulation, one GPU
    and no regularization images; :func:`text_encoder_stop_step` uses the real step count.
    """
    return _round_half_up(sensitivity * images * epochs)


def _batch_index(members: Mapping[Bucket, list[str]], batch_size: int) -> list[tuple[int, int]]:
    # Kohya's buckets_indices: (bucket index, batch index within the bucket), bucket by bucket.
    index: list[tuple[int, int]] = []
    for bucket_id, keys in enumerate(members.values()):
        index.extend((bucket_id, b) for b in range(_ceil_div(len(keys), batch_size)))
    return index


def iter_epoch_batches(
    entries: Iterable[EntryLike],
    settings: BucketSettings,
    batch_size: int,
    seed: int | None = None,
) -> Iterator[list[Batch]]:
    """Yield the batches of epoch 0, 1, 2, ... forever; every epoch has exactly :func:`batches_per_epoch` batches.

    Without ``seed`` every epoch is Kohya's unshuffled order (buckets sorted, members in registration order).
    With ``seed`` it follows Kohya's ``shuffle_buckets``: before epoch ``e`` a ``random.Random(seed + e)`` shuffles
    the list of (bucket, batch) indices and then each bucket's members, cumulatively from epoch to epoch; a batch
    takes its bucket's current members ``[i * batch : (i + 1) * batch]``. (Kohya's torch DataLoader shuffles the
    batches once more; that order is not reproduced, the counts are identical.)
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    members = bucket_members(entries, settings)
    buckets = list(members)
    lists = [list(keys) for keys in members.values()]
    index = _batch_index(members, batch_size)
    epoch = 0
    while True:
        if seed is not None:
            rng = random.Random(seed + epoch)
            rng.shuffle(index)
            for keys in lists:
                rng.shuffle(keys)
        yield [Batch(buckets[b], tuple(lists[b][i * batch_size : (i + 1) * batch_size])) for b, i in index]
        epoch += 1


# The trainer asks for epoch 1, 2, 3, ... in turn; keep the last schedule's generator so each call costs one epoch.
_SCHEDULE: dict[str, Any] = {}


def epoch_batches(
    entries: Sequence[EntryLike],
    settings: BucketSettings,
    batch_size: int,
    epoch: int = 0,
    seed: int | None = None,
) -> list[Batch]:
    """The batches of one epoch (0-based; see :func:`iter_epoch_batches`). Asking for epochs in increasing order
    is cheap: the shuffle state of the previous call is reused."""
    try:
        key = hash((tuple(entries), settings, batch_size, seed))
    except TypeError:  # unhashable entries: no reuse
        key = None
    state = _SCHEDULE if key is not None and _SCHEDULE.get("key") == key else None
    if state is None or state["next"] > epoch:
        state = {"key": key, "next": 0, "gen": iter_epoch_batches(entries, settings, batch_size, seed)}
    batches: list[Batch] = []
    while state["next"] <= epoch:
        batches = next(state["gen"])
        state["next"] += 1
    if key is not None:
        _SCHEDULE.clear()
        _SCHEDULE.update(state)
    return batches


# ---- the plan a person reads (dreamcurate plan) -------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOptions:
    """Training settings the plan depends on. Defaults follow the bundled trainer (and so the seed tutorial).

    Example::

        plan = build_plan(dataset, sizes, PlanOptions(batch_size=2, te_sensitivity=0.4))
        print(plan.total_steps, plan.stop_text_encoder_training)
    """

    resolution: int = 512  # training resolution; bucket area is resolution^2
    batch_size: int = 1  # images per batch (a batch never mixes buckets)
    gradient_accumulation_steps: int = 1  # batches per optimizer step
    num_processes: int = 1  # GPUs (processes) sharing every epoch
    max_train_epochs: int | None = 200  # epochs to train (wins over max_train_steps, as in Kohya)
    max_train_steps: int | None = None  # optimizer steps to train when epochs are not given
    save_every_n_epochs: int | None = 40  # save a checkpoint every N epochs (None: only at the end)
    te_sensitivity: float | None = (
        None  # stop the text encoder after this fraction of the steps (None: never)
    )
    stop_text_encoder_training: int | None = None  # explicit stop step (wins over the sensitivity)
    # False: the text encoder is never trained (stop step 0); None: the family's default (SD 1.x / 2.x train it,
    # SDXL does not: TrainConfig.train_text_encoder)
    train_text_encoder: bool | None = None
    min_bucket_reso: int = 256  # smallest bucket side
    max_bucket_reso: int = 1280  # largest bucket side
    bucket_reso_steps: int = 64  # bucket sides are multiples of this
    bucket_no_upscale: bool = False  # never enlarge images; buckets follow image sizes
    enable_bucket: bool = True  # False: every image is cropped to resolution x resolution
    vram_gb: float | None = None  # the GPU's memory, for warnings
    gpu_class: str | None = (
        None  # a row of curator.plan.estimates.ITS_TABLE (t4, rtx3060, rtx3090, a100, ...)
    )
    measured_its: float | None = None  # a measured optimizer steps / second at these settings
    save_precision: str = "float"  # float (~4 GB for SD 1.5) or fp16 / bf16 (~2 GB)
    mixed_precision: str = "fp16"  # no, fp16 or bf16
    gradient_checkpointing: bool = False  # trade compute for memory
    use_8bit_adam: bool = False  # 8-bit AdamW (bitsandbytes)
    optimizer_type: str = ""  # AdamW, AdamW8bit or Adafactor ("": by use_8bit_adam)
    fused_backward_pass: bool = False  # SDXL memory recipes (see curator.plan.estimates)
    full_bf16: bool = False
    cache_text_encoder_outputs: bool = False
    model: str = "sd15"  # sd15 or sd2 (checkpoint size, text-encoder memory) when the base model is not known
    base_model: ModelFacts | None = (
        None  # the base model's real facts (curator.plan.modelfile); win over ``model``
    )
    base_model_note: str | None = None  # why the base model's facts are missing (shown in the plan's notes)
    kind: str = "style"  # style or subject: which dataset size range the advice uses

    def bucket_settings(self) -> BucketSettings:
        """The bucket settings of these options."""
        return BucketSettings.of(self)

    @property
    def trains_text_encoder(self) -> bool:
        """Whether the text encoder(s) train at all (``train_text_encoder``, else the family's default)."""
        if self.train_text_encoder is not None:
            return self.train_text_encoder
        family = self.base_model.family if self.base_model else ("sdxl" if self.model == "sdxl" else "sd1")
        return family != "sdxl"


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

    @property
    def vram_gb(self) -> float:
        """The memory estimate in GB."""
        return float(self.vram["total_gb"])

    def to_json(self) -> dict:
        """Plain JSON data (schema ``dreamcurate.plan/1``)."""
        from dataclasses import asdict

        return {
            "schema": "dreamcurate.plan/1",
            "options": asdict(self.options),
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
        return "The text encoder trains to the end (no --te-sensitivity or --te-stop given)."
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
    if options.batch_size > 1:
        reasons.append(
            f"batch {options.batch_size} packs them into {batches} batches (a bucket's last batch may be short)"
        )
    divisor = options.gradient_accumulation_steps * options.num_processes
    if divisor > 1:
        reasons.append(
            f"{options.gradient_accumulation_steps} accumulation step(s) x {options.num_processes} GPU(s) "
            f"leave {steps} optimizer steps per epoch"
        )
    if options.max_train_epochs is None:
        reasons.append("the run is set in steps, not epochs")
    return reasons


def _te_stop(options: PlanOptions, total: int) -> int | None:
    if not options.trains_text_encoder:
        return 0
    return text_encoder_stop_step(total, options.te_sensitivity, options.stop_text_encoder_training)


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
    """The memory estimate's inputs: the options, and the base model's real sizes when it is known."""
    from curator.plan import estimates

    facts = options.base_model
    return estimates.VramInputs(
        options.resolution,
        options.batch_size,
        options.mixed_precision,
        options.gradient_checkpointing,
        options.use_8bit_adam,
        options.trains_text_encoder and stop != 0,
        facts.plan_model if facts else options.model,
        unet_params=facts.unet_params if facts else None,
        te_params=facts.text_encoder_params + facts.text_encoder_2_params if facts else None,
        unet_width=facts.unet_width if facts else None,
        optimizer_type=options.optimizer_type,
        fused_backward_pass=options.fused_backward_pass,
        full_bf16=options.full_bf16,
        cache_text_encoder_outputs=options.cache_text_encoder_outputs,
    )


def build_plan(
    dataset: Dataset, sizes: Mapping[str, tuple[int, int]], options: PlanOptions | None = None
) -> Plan:
    """The plan of a :class:`~curator.dataset.discover.Dataset` whose image sizes (``rel -> (width, height)``, EXIF
    orientation applied) are known: buckets and crops, steps, text-encoder stop step, checkpoints, memory, time and
    size advice."""
    from curator.plan import estimates

    options = options or PlanOptions()
    notes: list[str] = []
    entries = _entries(dataset, sizes, notes)
    settings = options.bucket_settings()
    buckets, images, bucket_notes = _bucket_rows(entries, settings)
    notes += bucket_notes
    counts = {(b["width"], b["height"]): b["count"] for b in buckets}
    batches = batches_per_epoch(counts, options.batch_size)
    per_epoch = steps_per_epoch(
        counts, options.batch_size, options.gradient_accumulation_steps, options.num_processes
    )
    total = total_steps(per_epoch, options.max_train_epochs, options.max_train_steps)
    epochs = options.max_train_epochs or epochs_for_steps(total, per_epoch)
    stop = _te_stop(options, total)
    train_entries = [e for e in entries if not e.is_reg]
    seed_step = None
    if options.te_sensitivity is not None and options.stop_text_encoder_training is None:
        seed_step = seed_formula_stop_step(len(train_entries), options.te_sensitivity, epochs)
    repeats = effective_repeats(entries)
    reg_seen = sum(n for e, n in repeats if e.is_reg)
    explanation = explain_te_gap(
        seed_step, stop, len(train_entries), sum(counts.values()), options, reg_seen, batches, per_epoch
    )
    vram_inputs = _vram_inputs(options, stop)
    vram = estimates.estimate_vram(vram_inputs, options.vram_gb)
    time = estimates.estimate_time(
        total, vram_inputs, options.gradient_accumulation_steps, options.gpu_class, options.measured_its, stop
    )
    saves = estimates.checkpoints_written(epochs, options.save_every_n_epochs)
    facts = options.base_model
    each = estimates.checkpoint_gb(
        options.save_precision,
        vram_inputs.model,
        facts.total_params if facts else None,
        facts.header_bytes if facts else 0,
    )
    if options.base_model_note:
        notes.append(options.base_model_note)
    if vram_inputs.model == "sdxl":
        notes.append(f"SDXL estimates ({estimates.SDXL_SOURCES})")
    concepts = _concept_rows(dataset, repeats)
    advice = [
        estimates.size_advice(c["name"], c["images"], options.kind).to_json()
        for c in concepts
        if not c["is_reg"]
    ]
    return Plan(
        options=options,
        buckets=buckets,
        images=images,
        concepts=concepts,
        batches_per_epoch=batches,
        steps_per_epoch=per_epoch,
        total_steps=total,
        epochs=epochs,
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
    )


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
