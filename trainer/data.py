"""The training data: the plan's buckets and epoch batches (shared code with ``curator.plan.steps``), pixels, captions,
and the optional latent cache.

Example::

    data = build_training_data(config)
    for batch in data.epoch_batches(epoch=1):
        pixels = load_batch_pixels(batch)               # (B, 3, H, W) in [-1, 1]
        captions = batch_captions(batch, config, epoch=1, index=0)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.dataset.discover import Dataset, Item
from curator.plan import steps as plan_steps
from curator.plan.buckets import BucketSettings, select_bucket
from curator.settings.config import TrainConfig


@dataclass(frozen=True)
class Sample:
    """One image as training sees it: the item, its bucket (width, height), the size it is resized to before the
    centre crop, and its own size."""

    item: Item
    bucket: tuple[int, int]
    resized: tuple[int, int]
    original: tuple[int, int] = (0, 0)  # width and height after EXIF orientation (SDXL's size conditioning)


@dataclass(frozen=True)
class Batch:
    """One batch: images of one bucket, training and regularization mixed as the plan ordered them."""

    bucket: tuple[int, int]
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class Augment:
    """How one image is seen at one step: flipped (flip_aug), and where it is cropped (random_crop: a position drawn
    from ``crop_seed``; None: the centre)."""

    flip: bool = False
    crop_seed: str | None = None


def batch_augments(batch: Batch, config: TrainConfig, epoch: int, index: int) -> list[Augment]:
    """Kohya's flip_aug (each image flipped with probability 1/2) and random_crop, reproducible from (seed, epoch,
    batch index, position) like the captions, so a resumed run and any number of loader threads see the same."""
    augments = []
    for position in range(len(batch.samples)):
        key = f"{config.seed}:{epoch}:{index}:{position}:augment"
        flip = config.flip_aug and random.Random(key).random() < 0.5
        augments.append(Augment(flip, key if config.random_crop else None))
    return augments


def bucket_settings(config: TrainConfig) -> BucketSettings:
    """The bucket settings of a config (the same object the plan uses)."""
    return BucketSettings.of(config)


def oriented_size(path: Path) -> tuple[int, int]:
    """Width and height after EXIF orientation (read from the header; pixels are not decoded)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_pixels(sample: Sample, augment: Augment = Augment()) -> Any:
    """The image as a float tensor (3, H, W) in [-1, 1]: opened by :func:`curator.images.opening.open_rgb` (EXIF
    orientation, transparency on white, a JPEG decoded at a reduced DCT scale when that still covers the target),
    scaled to cover, cropped (centre, or at random with ``augment.crop_seed``: Kohya's inclusive ``randint(0,
    excess)`` per side), flipped."""
    import numpy as np
    import torch
    from PIL import Image

    from curator.images.opening import LoadError, open_rgb

    width, height = sample.bucket
    resized_w, resized_h = max(sample.resized[0], width), max(sample.resized[1], height)
    try:
        image = open_rgb(sample.item.path, (resized_w, resized_h))
    except LoadError as exc:
        raise DataError(f"cannot read image {sample.item.path}: {exc.message}") from exc
    if image.size != (resized_w, resized_h):
        image = image.resize((resized_w, resized_h), Image.Resampling.LANCZOS)
    if augment.crop_seed is None:
        left, top = (resized_w - width) // 2, (resized_h - height) // 2
    else:
        rng = random.Random(augment.crop_seed + ":crop")
        left, top = rng.randint(0, resized_w - width), rng.randint(0, resized_h - height)
    image = image.crop((left, top, left + width, top + height))
    if augment.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_batch_pixels(batch: Batch, augments: list[Augment] | None = None, workers: int = 0) -> Any:
    """(B, 3, H, W) pixels of a batch, decoded on ``workers`` threads (PIL releases the GIL while decoding)."""
    import torch

    views = augments or [Augment()] * len(batch.samples)
    pairs = list(zip(batch.samples, views, strict=True))
    if workers > 1 and len(pairs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(pairs))) as pool:
            return torch.stack(list(pool.map(lambda pair: load_pixels(*pair), pairs)))
    return torch.stack([load_pixels(sample, view) for sample, view in pairs])


def loader_workers(config: TrainConfig) -> int:
    """Decoding threads: max_data_loader_n_workers, at most the CPU count (as Kohya caps it)."""
    import os

    return min(config.max_data_loader_n_workers, os.cpu_count() or 1)


def item_caption(item: Item) -> str:
    """The caption line training reads (Kohya: the first line of the caption file; the concept's class name when the
    image has no caption). A caption that is not UTF-8 is a DataError, not a crash mid-run."""
    from curator.captions.parse import read_caption

    caption = read_caption(item.caption_path)
    if caption.status == "not_utf8":
        raise DataError(f"caption is not UTF-8 ({caption.error}): {item.caption_path}")
    return caption.text if caption.status == "ok" else item.concept


def caption_options(config: TrainConfig) -> Any:
    """The shared caption options of a config."""
    from curator.captions.parse import CaptionOptions

    return CaptionOptions(
        shuffle_caption=config.shuffle_caption,
        keep_tokens=config.keep_tokens,
        keep_tokens_separator=config.keep_tokens_separator,
        caption_tag_dropout_rate=config.caption_tag_dropout_rate,
        caption_prefix=config.caption_prefix,
        caption_suffix=config.caption_suffix,
    )


def batch_captions(batch: Batch, config: TrainConfig, epoch: int, index: int) -> list[str]:
    """Processed captions of a batch (shuffle, keep_tokens, dropout), reproducible from (seed, epoch, index) so a
    resumed run sees the captions the killed run would have seen."""
    from curator.captions.parse import process_caption

    rng = random.Random(f"{config.seed}:{epoch}:{index}")
    options = caption_options(config)
    # Kohya's caption dropout: the whole caption, for one image this step, or for every image of every N-th epoch
    every_n = config.caption_dropout_every_n_epochs
    epoch_dropped = every_n > 0 and epoch % every_n == 0
    captions = []
    for sample in batch.samples:
        dropped = config.caption_dropout_rate > 0 and rng.random() < config.caption_dropout_rate
        if dropped or epoch_dropped:
            captions.append("")
        else:
            captions.append(process_caption(item_caption(sample.item), options, rng))
    return captions


class DataError(ValueError):
    """The dataset cannot be trained (no images, unreadable caption...): one line for the user."""


@dataclass
class TrainingData:
    """The dataset as the trainer runs it: every image bucketed, the plan's schedule and epoch batches.

    Example::

        data = build_training_data(config)
        data.schedule.total_steps, len(data.epoch_batches(1))
    """

    dataset: Dataset
    samples: dict[str, Sample]
    entries: list[Any]
    schedule: plan_steps.Schedule
    config: TrainConfig
    validation: list[Sample] = field(default_factory=list)  # held out (validation_split): never trained

    def epoch_batches(self, epoch: int, rank: int = 0, world: int = 1) -> list[Batch]:
        """The batches of one epoch (1-based) for process ``rank`` of ``world``, in training order."""
        from curator.plan import steps as plan

        planned = plan.epoch_batches(
            self.entries,
            bucket_settings(self.config),
            self.config.train_batch_size,
            epoch - 1,
            self.config.seed,
        )
        batches = [Batch(b.bucket, tuple(self.samples[key] for key in b.keys)) for b in planned]
        if world == 1:
            return batches
        per_process = -(-len(batches) // world)
        mine = batches[rank::world]
        # Every process must take the same number of steps (DDP), so short shards wrap around, as accelerate's
        # even_batches does.
        while len(mine) < per_process:
            mine.append(batches[len(mine) % len(batches)])
        return mine


def discover_dataset(config: TrainConfig) -> Dataset:
    """The Kohya-layout dataset a config names; a DataError when it holds no training image."""
    from curator.dataset.discover import discover

    try:
        dataset = discover(
            Path(config.train_data_dir),
            reg_root=Path(config.reg_data_dir) if config.reg_data_dir else None,
            caption_extension=config.caption_extension,
        )
    except NotADirectoryError as exc:
        raise DataError(str(exc)) from exc
    if not dataset.train_items:
        raise DataError(
            f"no training images found in {config.train_data_dir} (Kohya layout: DIR/<repeats>_<name>/)"
        )
    return dataset


def build_training_data(config: TrainConfig, num_processes: int = 1) -> TrainingData:
    """Discover the dataset, bucket every image, check the captions and compute the plan's schedule."""
    from curator.plan import steps as plan
    from curator.plan.validation import held_out_items

    dataset = discover_dataset(config)
    settings = bucket_settings(config)
    held = held_out_items(dataset.items, config.validation_split, config.seed)
    entries, samples, validation = [], {}, []
    for item in dataset.items:
        try:
            width, height = oriented_size(item.path)
        except OSError as exc:
            raise DataError(f"cannot read image {item.path}: {exc}") from exc
        item_caption(item)
        choice = select_bucket(width, height, settings)
        sample = Sample(item, choice.bucket, choice.resized, (width, height))
        if item.rel in held:
            validation.append(sample)
            continue
        entries.append(plan.PlanEntry(item.rel, width, height, item.repeats, item.is_reg))
        samples[item.rel] = sample
    counts = plan.bucket_counts(entries, settings)
    if not counts:
        raise DataError("no image can be trained at these bucket settings")
    return TrainingData(
        dataset, samples, entries, plan.schedule(config, counts, num_processes), config, validation
    )


# ---- latent cache ------------------------------------------------------------------------------------------------


class LatentCache:
    """VAE latents of (image, bucket), in memory or on disk (``<dir>/<key>.pt``); the key covers the image file
    (path, size, mtime), the bucket, the crop size and the VAE identity, so a changed image or model misses.

    Example::

        cache = LatentCache(disk_dir=None, vae_id="base.safetensors:123")
        latent = cache.get(sample) or cache.put(sample, encode(sample))
    """

    def __init__(self, disk_dir: Path | None, vae_id: str) -> None:
        self.disk_dir = disk_dir
        self.vae_id = vae_id
        self._memory: dict[str, Any] = {}
        if disk_dir is not None:
            disk_dir.mkdir(parents=True, exist_ok=True)

    def key(self, sample: Sample, flipped: bool = False) -> str:
        """The cache key of a sample (its flipped view, for flip_aug, has its own)."""
        stat = sample.item.path.stat()
        raw = (
            f"{sample.item.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample.bucket}|{sample.resized}"
        )
        flip = "|flipped" if flipped else ""
        return hashlib.sha1(f"{raw}|{self.vae_id}{flip}".encode()).hexdigest()

    def get(self, sample: Sample, flipped: bool = False) -> Any | None:
        """The cached latent (C, h, w) on the CPU, or None."""
        import torch

        key = self.key(sample, flipped)
        if key in self._memory:
            return self._memory[key]
        if self.disk_dir is not None:
            path = self.disk_dir / f"{key}.pt"
            if path.exists():
                try:
                    latent = torch.load(path, map_location="cpu", weights_only=True)
                except Exception:  # a torn file from a killed run is a miss, not a crash
                    return None
                self._memory[key] = latent
                return latent
        return None

    def require(self, sample: Sample, flipped: bool = False) -> Any:
        """The cached latent; a DataError names the image when its file changed after caching."""
        latent = self.get(sample, flipped)
        if latent is None:
            raise DataError(
                f"{sample.item.path} changed during training (its cached latent no longer matches)"
            )
        return latent

    def put(self, sample: Sample, latent: Any, flipped: bool = False) -> Any:
        """Store a latent (C, h, w); returns it."""
        import io

        import torch

        from curator.fsutil import atomic_write_bytes

        latent = latent.detach().to("cpu").contiguous()
        key = self.key(sample, flipped)
        self._memory[key] = latent
        if self.disk_dir is not None:
            buffer = io.BytesIO()
            torch.save(latent, buffer)
            atomic_write_bytes(self.disk_dir / f"{key}.pt", buffer.getvalue())
        return latent

    def __len__(self) -> int:
        return len(self._memory)


def iter_unique_samples(samples: list[Sample], bucket_order: bool = True) -> Iterator[list[Sample]]:
    """Groups of samples sharing a bucket (for encoding several at once)."""
    groups: dict[tuple[int, int], list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.bucket, []).append(sample)
    for bucket in sorted(groups) if bucket_order else groups:
        yield groups[bucket]
