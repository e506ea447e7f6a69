"""The training data: the plan's buckets and epoch batches (shared code with ``curator.plan``), pixels, captions,
and the optional latent cache.

Example::

    data = build_training_data(config)
    for batch in data.epoch_batches(epoch=1):
        pixels = load_batch_pixels(batch)               # (B, 3, H, W) in [-1, 1]
        captions = batch_captions(batch, config, seed=config.seed, epoch=1, index=0)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.buckets import BucketSettings, select_bucket
from curator.dataset import Dataset, Item
from trainer.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Sample:
    """One image as training sees it: the item, its bucket (width, height) and the size it is resized to before the
    centre crop."""

    item: Item
    bucket: tuple[int, int]
    resized: tuple[int, int]


@dataclass(frozen=True)
class Batch:
    """One batch: images of one bucket, training and regularization mixed as the plan ordered them."""

    bucket: tuple[int, int]
    samples: tuple[Sample, ...]


def bucket_settings(config: TrainConfig) -> BucketSettings:
    """The bucket settings of a config (the same object the plan uses)."""
    return BucketSettings(
        resolution=config.resolution,
        min_bucket_reso=config.min_bucket_reso,
        max_bucket_reso=config.max_bucket_reso,
        bucket_reso_steps=config.bucket_reso_steps,
        bucket_no_upscale=config.bucket_no_upscale,
        enable_bucket=config.enable_bucket,
    )


def oriented_size(path: Path) -> tuple[int, int]:
    """Width and height after EXIF orientation (read from the header; pixels are not decoded)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def make_sample(item: Item, config: TrainConfig) -> Sample:
    """Assign ``item`` to its bucket, as the plan does."""
    width, height = oriented_size(item.path)
    choice = select_bucket(width, height, bucket_settings(config))
    return Sample(item=item, bucket=choice.bucket, resized=choice.resized)


def load_pixels(sample: Sample) -> Any:
    """The image as a float tensor (3, H, W) in [-1, 1]: EXIF orientation, RGB, scale to cover, centre crop."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with Image.open(sample.item.path) as raw:
        image = ImageOps.exif_transpose(raw)
        if image.mode != "RGB":
            image = _to_rgb(image)
        else:
            image.load()
    width, height = sample.bucket
    resized_w, resized_h = max(sample.resized[0], width), max(sample.resized[1], height)
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


def read_caption(item: Item) -> str:
    """The caption text of an item ('' when it has none), whitespace collapsed to one line."""
    if item.caption_path is None:
        return ""
    try:
        text = item.caption_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = item.caption_path.read_text(encoding="latin-1")
    return " ".join(text.split())


def batch_captions(batch: Batch, config: TrainConfig, seed: int, epoch: int, index: int) -> list[str]:
    """Processed captions of a batch (shuffle, keep_tokens, dropout), reproducible from (seed, epoch, index) so a
    resumed run sees the captions the killed run would have seen."""
    rng = random.Random(f"{seed}:{epoch}:{index}")
    return [process_caption(read_caption(s.item), config, rng) for s in batch.samples]


def process_caption(text: str, config: TrainConfig, rng: random.Random) -> str:
    """One caption as Kohya trains it (the shared ``curator.captions`` code)."""
    from curator import captions

    if config.caption_dropout_rate > 0 and rng.random() < config.caption_dropout_rate:
        return ""
    return captions.process_caption(
        text,
        shuffle=config.shuffle_caption,
        keep_tokens=config.keep_tokens,
        keep_tokens_separator=config.keep_tokens_separator,
        rng=rng,
    )


@dataclass
class TrainingData:
    """The dataset as the trainer runs it, with the plan's numbers."""

    dataset: Dataset
    samples: list[Sample]
    steps_per_epoch: int
    total_steps: int
    epochs: int
    te_stop_step: int | None
    _plan_input: Any

    def epoch_batches(self, epoch: int, rank: int = 0, world: int = 1) -> list[Batch]:
        """The batches of one epoch (1-based) for process ``rank`` of ``world``, in training order."""
        batches = plan_epoch_batches(self, epoch)
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
    """The Kohya-layout dataset a config names; a ConfigError when it holds no training image."""
    from curator.dataset import discover

    dataset = discover(
        Path(config.train_data_dir),
        reg_root=Path(config.reg_data_dir) if config.reg_data_dir else None,
        caption_extension=config.caption_extension,
    )
    if not dataset.train_items:
        raise ConfigError(f"no training images found in {config.train_data_dir}")
    return dataset


def build_training_data(config: TrainConfig, num_processes: int = 1) -> TrainingData:
    """Discover the dataset, bucket every image and compute the plan's step numbers."""
    dataset = discover_dataset(config)
    samples = [make_sample(item, config) for item in dataset.items]
    return plan_training_data(dataset, samples, config, num_processes)


# ---- the plan: the shared step arithmetic of curator.plan ------------------------------------------------------


def plan_training_data(
    dataset: Dataset, samples: list[Sample], config: TrainConfig, num_processes: int
) -> TrainingData:
    """Steps per epoch, total steps and the text-encoder stop step, from ``curator.plan``."""
    raise NotImplementedError  # filled when curator.plan lands


def plan_epoch_batches(data: TrainingData, epoch: int) -> list[Batch]:
    """The batches of one epoch as ``curator.plan`` orders them."""
    raise NotImplementedError


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
        raw = f"{sample.item.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample.bucket}|{sample.resized}"
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
