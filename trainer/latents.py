"""The latent cache filled before step 1: every image (and its mirror image with flip_aug, as Kohya caches both)
encoded once by the VAE, images decoded ahead on loader threads, progress reported as ``stage`` events.

Example::

    cache = cache_all_latents(model, data, config, accelerator, events)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from curator.settings.config import TrainConfig
from trainer.data import (
    Augment,
    Batch,
    LatentCache,
    Sample,
    TrainingData,
    iter_unique_samples,
    loader_workers,
)
from trainer.events import EventLog

T = TypeVar("T")
R = TypeVar("R")

#: images encoded per VAE call
CHUNK = 4


def prefetch(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in order, computed up to ``2 x workers`` items ahead on threads (0 or 1: in line)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def vae_identity(config: TrainConfig) -> str:
    """What the cached latents depend on besides the image: the base model file and the VAE file."""
    base = Path(config.pretrained_model_name_or_path)
    vae_mtime = _mtime(Path(config.vae)) if config.vae else 0
    return f"{base.resolve()}:{_mtime(base)}:{config.vae}:{vae_mtime}"


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def cache_all_latents(
    model: Any, data: TrainingData, config: TrainConfig, accelerator: Any, events: EventLog
) -> LatentCache:
    """Encode every image once (per bucket, in small batches); then the VAE leaves the GPU until sampling."""
    import torch

    from trainer.data import load_batch_pixels

    disk = Path(config.output_dir) / "latent_cache" if config.cache_latents_to_disk else None
    cache = LatentCache(disk, vae_identity(config))
    views = [False, True] if config.flip_aug else [False]
    samples = list(data.samples.values()) + data.validation
    jobs: list[tuple[list[Sample], bool]] = []
    for group in iter_unique_samples(samples):
        for flipped in views:
            missing = [s for s in group if cache.get(s, flipped) is None]
            jobs += [(missing[i : i + CHUNK], flipped) for i in range(0, len(missing), CHUNK)]
    total = len(samples) * len(views)
    done = total - sum(len(chunk) for chunk, _ in jobs)
    report = _progress_reporter(events, accelerator.is_main_process, total)
    report(done)
    if not jobs:
        return cache

    def decode(job: tuple[list[Sample], bool]) -> Any:
        chunk, flipped = job
        return load_batch_pixels(Batch(chunk[0].bucket, tuple(chunk)), [Augment(flip=flipped)] * len(chunk))

    model.vae.to(accelerator.device)
    for (chunk, flipped), pixels in zip(jobs, prefetch(decode, jobs, loader_workers(config)), strict=True):
        with torch.no_grad():
            latents = model.vae.encode(pixels.to(accelerator.device)).latent_dist.sample()
        for sample, latent in zip(chunk, latents, strict=True):
            cache.put(sample, latent, flipped)
        done += len(chunk)
        report(done)
    model.vae.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return cache


def _progress_reporter(events: EventLog, main: bool, total: int) -> Callable[[int], None]:
    """``report(done)``: a ``stage`` event and a one-line progress on stderr, at most every half second."""
    import sys
    import time

    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.5 and done:
            return
        last[0] = now
        events.emit("stage", stage="latents", done=done, total=total)
        if main:
            end = "\n" if done >= total else "\r"
            print(f"caching latents {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report
