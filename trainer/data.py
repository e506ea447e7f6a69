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
from dataclasses import dataclass
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


def load_pixels(sample: Sample) -> Any:
    """The image as a float tensor (3, H, W) in [-1, 1]: EXIF orientation, RGB, scale to cover, centre crop."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    width, height = sample.bucket
    resized_w, resized_h = max(sample.resized[0], width), max(sample.resized[1], height)
    with Image.open(sample.item.path) as raw:
        if raw.format == "JPEG":
            # Let the JPEG decoder scale down by 1/2..1/8 while decoding (never below the target size): a 4 MP photo
            # trained at 512 px decodes several times faster, and LANCZOS does the rest.
            swapped = raw.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            raw.draft("RGB", (resized_h, resized_w) if swapped else (resized_w, resized_h))
        image = ImageOps.exif_transpose(raw)
        if image.mode != "RGB":
            image = _to_rgb(image)
        else:
            image.load()
    if image.size != (resized_w, resized_h):
        image = image.resize((resized_w, resized_h), Image.Resampling.LANCZOS)
    left, top = (resized_w - width) // 2, (resized_h - height) // 2
    image = image.crop((left, top, left + width, top + height))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _to_rgb(image: Any) -> Any:
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white rather than whatever colour the file stored under alpha 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_batch_pixels(batch: Batch) -> Any:
    """(B, 3, H, W) pixels of a batch."""
    import torch

    return torch.stack([load_pixels(sample) for sample in batch.samples])


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
    )


def batch_captions(batch: Batch, config: TrainConfig, epoch: int, index: int) -> list[str]:
    """Processed captions of a batch (shuffle, keep_tokens, dropout), reproducible from (seed, epoch, index) so a
    resumed run sees the captions the killed run would have seen."""
    from curator.captions.parse import process_caption

    rng = random.Random(f"{config.seed}:{epoch}:{index}")
    options = caption_options(config)
    captions = []
    for sample in batch.samples:
        if config.caption_dropout_rate > 0 and rng.random() < config.caption_dropout_rate:
            captions.append("")  # Kohya's caption dropout: the whole caption, this step
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

    dataset = discover_dataset(config)
    settings = bucket_settings(config)
    entries, samples = [], {}
    for item in dataset.items:
        try:
            width, height = oriented_size(item.path)
        except OSError as exc:
            raise DataError(f"cannot read image {item.path}: {exc}") from exc
        item_caption(item)
        choice = select_bucket(width, height, settings)
        entries.append(plan.PlanEntry(item.rel, width, height, item.repeats, item.is_reg))
        samples[item.rel] = Sample(item, choice.bucket, choice.resized, (width, height))
    counts = plan.bucket_counts(entries, settings)
    if not counts:
        raise DataError("no image can be trained at these bucket settings")
    return TrainingData(dataset, samples, entries, plan.schedule(config, counts, num_processes), config)


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

    def key(self, sample: Sample) -> str:
        """The cache key of a sample."""
        stat = sample.item.path.stat()
        raw = (
            f"{sample.item.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample.bucket}|{sample.resized}"
        )
        return hashlib.sha1(f"{raw}|{self.vae_id}".encode()).hexdigest()

    def get(self, sample: Sample) -> Any | None:
        """The cached latent (C, h, w) on the CPU, or None."""
        import torch

        key = self.key(sample)
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

    def require(self, sample: Sample) -> Any:
        """The cached latent; a DataError names the image when its file changed after caching."""
        latent = self.get(sample)
        if latent is None:
            raise DataError(
                f"{sample.item.path} changed during training (its cached latent no longer matches)"
            )
        return latent

    def put(self, sample: Sample, latent: Any) -> Any:
        """Store a latent (C, h, w); returns it."""
        import io

        import torch

        from curator.fsutil import atomic_write_bytes

        latent = latent.detach().to("cpu").contiguous()
        key = self.key(sample)
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
