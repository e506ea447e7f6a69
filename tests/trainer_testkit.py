"""Shared helpers of the trainer tests: tiny datasets generated in tmp_path and a fast config for the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from curator.settings.config import TrainConfig


def make_images(
    folder: Path, sizes: list[tuple[int, int]], caption: str = "sks dog, red, sitting, grass"
) -> None:
    """Random-noise PNGs of the given (width, height) sizes with a caption file each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(sizes) + sizes[0][0])
    for index, (width, height) in enumerate(sizes):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
        (folder / f"img{index:02d}.txt").write_text(caption, encoding="utf-8")


def fast_config(model: Path, data: Path, out: Path, **changes: object) -> TrainConfig:
    """A config for the tiny model at 96 px with three buckets: 64x128, 96x96, 128x64."""
    base = TrainConfig(
        pretrained_model_name_or_path=str(model),
        train_data_dir=str(data),
        output_dir=str(out),
        resolution=96,
        min_bucket_reso=64,
        max_bucket_reso=128,
        bucket_reso_steps=32,
        max_train_epochs=1,
        save_every_n_epochs=0,
        save_state=False,
        learning_rate=1e-4,
        mixed_precision="no",
    )
    return base.replace(**changes)


SQUARE, WIDE, TALL = (96, 96), (140, 70), (70, 140)
