"""GPU check of our training loop at real size: the SD 1.5 architecture with random weights (nothing downloaded),
512 px, batch 1, fp16 mixed precision, gradient checkpointing, 8-bit AdamW when bitsandbytes is importable (AdamW
otherwise), SDPA attention (diffusers' default processor), text encoder trained. Prints it/s and peak VRAM.

    python bench/gpu_sd15_step.py [--steps 40] [--no-cache-latents] [--no-gradient-checkpointing]

Target (issue 6): peak VRAM at most 10 GB. Safe to import on a CPU-only machine; running it needs CUDA.
The random model is built in memory and handed to the loop in place of a file (``model_io.load_model`` and the
header check are replaced for this process only), so no 4 GB checkpoint is written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WARMUP = 5


def make_images(folder: Path, count: int = 4, size: int = 512) -> None:
    """A few smooth random images with captions (Kohya folder ``1_sks``)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, size, dtype=np.float32)
    for index in range(count):
        colour = rng.random(3, dtype=np.float32)
        pixels = (np.outer(grid, grid[::-1])[..., None] * colour * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
        (folder / f"img{index}.txt").write_text(f"sks, image {index}, smooth gradient")


def main() -> None:
    """Build the model, train ``--steps`` steps through ``trainer.loop.train`` and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--no-cache-latents", action="store_true")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_sd15_step.py needs a CUDA GPU")
    from curator.settings.config import TrainConfig
    from trainer import loop
    from trainer.events import read_events
    from trainer.loop import train
    from trainer.models import io as model_io
    from trainer.models.arch import sd15_architecture
    from trainer.models.tiny import build_random_model

    try:
        import bitsandbytes  # type: ignore[import-not-found]  # noqa: F401

        optimizer = "AdamW8bit"
    except ImportError:
        optimizer = "AdamW"
    model = build_random_model(sd15_architecture(), seed=0)
    model_io.load_model = lambda *_args, **_kwargs: model  # type: ignore[assignment]
    # no file to inspect
    loop.check_base_model = lambda config: None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_images(work / "data" / "1_sks")
        (work / "placeholder.safetensors").write_bytes(b"")  # the config's model path must exist
        config = TrainConfig(
            pretrained_model_name_or_path=str(work / "placeholder.safetensors"),
            train_data_dir=str(work / "data"),
            output_dir=str(work / "out"),
            resolution=512,
            max_train_epochs=0,
            max_train_steps=args.steps,
            train_batch_size=1,
            learning_rate=1e-6,
            optimizer_type=optimizer,
            mixed_precision="fp16",
            gradient_checkpointing=not args.no_gradient_checkpointing,
            cache_latents=not args.no_cache_latents,
            save_every_n_epochs=0,
            save_state=False,
            save_precision="fp16",
        )
        torch.cuda.reset_peak_memory_stats()
        train(config, show_progress=False)
        events = read_events(work / "out" / "events.jsonl")
    times = [e["time"] for e in events if e["event"] == "step"]
    rate = (len(times) - WARMUP) / (times[-1] - times[WARMUP - 1])
    peak = torch.cuda.max_memory_allocated() / 2**30
    reserved = torch.cuda.max_memory_reserved() / 2**30
    print(
        f"SD 1.5 architecture (random weights), 512 px, batch 1, fp16 mixed precision, {optimizer}, "
        f"gradient checkpointing {'on' if config.gradient_checkpointing else 'off'}, "
        f"cache_latents {'on' if config.cache_latents else 'off'}, text encoder trained, "
        f"{torch.cuda.get_device_name()}"
    )
    print(f"it/s {rate:.2f}   peak VRAM allocated {peak:.2f} GiB (reserved {reserved:.2f} GiB)")
    print(f"target peak <= 10 GB: {'met' if peak * 2**30 <= 10e9 else 'MISSED'}")


if __name__ == "__main__":
    main()
