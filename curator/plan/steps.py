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
    pass

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


# ---- the schedule of a run: one function, the trainer's and the plan's --------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A run's numbers: optimizer steps per epoch, total steps, epochs started, and the text-encoder stop step
    (None: it trains to the end; 0: it never trains).

    Example::

        s = schedule(TrainConfig(train_batch_size=2, text_encoder_sensitivity=0.4), {(512, 512): 10})
        s.steps_per_epoch, s.total_steps, s.te_stop_step    # (5, 1000, 400)
    """

    steps_per_epoch: int
    total_steps: int
    epochs: int
    te_stop_step: int | None


def te_stop_setting(config: Any) -> tuple[float | None, int | None]:
    """(sensitivity, explicit stop step) of a config in :func:`text_encoder_stop_step`'s terms.

    The settings' one convention (``TrainConfig``, as sd-scripts' train_db.py reads it): ``stop_text_encoder_training``
    unset (None) leaves the stop to ``text_encoder_sensitivity`` (0: trains to the end); 0 or negative never trains
    the text encoder (Kohya stops it before step 1); N stops at step N. A ``learning_rate_te`` of 0 trains it at rate
    0, i.e. not at all: stop 0 too.
    """
    stop = config.stop_text_encoder_training
    if getattr(config, "learning_rate_te", None) == 0 or (stop is not None and stop <= 0):
        return None, 0
    return (config.text_encoder_sensitivity or None), stop


def schedule(config: Any, bucket_image_counts: Mapping[Bucket, int], num_processes: int = 1) -> Schedule:
    """The schedule of a run of ``config`` (a ``TrainConfig``) over these buckets: what the plan shows and exactly
    what the trainer runs."""
    per_epoch = steps_per_epoch(
        bucket_image_counts, config.train_batch_size, config.gradient_accumulation_steps, num_processes
    )
    total = total_steps(per_epoch, config.max_train_epochs or None, config.max_train_steps or None)
    epochs = config.max_train_epochs or epochs_for_steps(total, per_epoch)
    sensitivity, explicit = te_stop_setting(config)
    return Schedule(per_epoch, total, epochs, text_encoder_stop_step(total, sensitivity, explicit))
