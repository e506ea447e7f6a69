"""GPU check of the SDXL training loop at real size: the SDXL base architecture with random weights (nothing
downloaded), 1024 px, batch 1, bf16, SDPA attention, latents cached, through ``trainer.loop.train``. Two cases, each
in its own process so each peak is its own:

- ``unet``: UNet only, text-encoder outputs cached, Adafactor with fused_backward_pass, full_bf16, gradient
  checkpointing (the recipe of sd-scripts PR 1259: about 10 GB);
- ``both``: UNet and both text encoders trained, same optimizer settings (OneTrainer 164: a 4090 runs a full
  fine-tune with both encoders at about 1.2 s/it).

Prints, per case, s/it and peak VRAM against the plan's estimate for the same settings (measured / estimate), and
the cost of training the encoders (both / unet).

    python bench/gpu_sdxl_step.py [--steps 30] [--case unet|both]

Safe to import on a CPU-only machine; running it needs CUDA and about 20 GB of host memory for the random model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WARMUP = 5
CASES = ("unet", "both")


def make_images(folder: Path, count: int = 4, size: int = 1024) -> None:
    """A few smooth images with fixed captions (Kohya folder ``1_sks``)."""
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


def case_config(case: str, work: Path, steps: int) -> object:
    """The TrainConfig of one case."""
    from curator.settings.config import TrainConfig

    return TrainConfig.for_family(
        "sdxl",
        pretrained_model_name_or_path=str(work / "placeholder.safetensors"),
        train_data_dir=str(work / "data"),
        output_dir=str(work / "out"),
        max_train_epochs=0,
        max_train_steps=steps,
        learning_rate=1e-6,
        optimizer_type="Adafactor",
        fused_backward_pass=True,
        mixed_precision="bf16",
        full_bf16=True,
        gradient_checkpointing=True,
        cache_latents=True,
        shuffle_caption=False,
        cache_text_encoder_outputs=case == "unet",
        train_text_encoder=case == "both",
        save_every_n_epochs=0,
        save_state=False,
    )


def estimate(case: str) -> tuple[float, float]:
    """The plan's (GB, s/it on an RTX 4090) for the case's settings."""
    from curator.plan import estimates

    inputs = estimates.VramInputs(
        resolution=1024,
        mixed_precision="bf16",
        gradient_checkpointing=True,
        train_text_encoder=case == "both",
        model="sdxl",
        optimizer_type="Adafactor",
        fused_backward_pass=True,
        full_bf16=True,
        cache_text_encoder_outputs=case == "unet",
    )
    vram = estimates.estimate_vram(inputs).total_gb
    speed = estimates.estimate_time(100, inputs, gpu_class="rtx4090", te_steps=100 if case == "both" else 0)
    return vram, 1 / speed.its


def run_case(case: str, steps: int) -> dict[str, float]:
    """Train ``steps`` steps of one case in this process; the measured numbers."""
    import torch

    from trainer import loop
    from trainer.events import read_events
    from trainer.models import io as model_io
    from trainer.models.sdxl_arch import sdxl_architecture
    from trainer.models.tiny import build_random_model

    model = build_random_model(sdxl_architecture(), seed=0)
    model_io.load_model = lambda *_args, **_kwargs: model  # type: ignore[assignment]
    loop.check_base_model = lambda config: None  # type: ignore[assignment]  # no file to inspect
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_images(work / "data" / "1_sks")
        (work / "placeholder.safetensors").write_bytes(b"")
        config = case_config(case, work, steps)
        torch.cuda.reset_peak_memory_stats()
        loop.train(config, show_progress=False)  # type: ignore[arg-type]
        events = read_events(work / "out" / "events.jsonl")
    times = [e["time"] for e in events if e["event"] == "step"]
    seconds = (times[-1] - times[WARMUP - 1]) / (len(times) - WARMUP)
    return {
        "s_per_it": seconds,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
    }


def main() -> None:
    """Run both cases in child processes (or one with --case) and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--case", choices=CASES)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_sdxl_step.py needs a CUDA GPU")
    if args.case:
        print(json.dumps(run_case(args.case, args.steps)))
        return
    results = {}
    for case in CASES:
        child = subprocess.run(
            [sys.executable, __file__, "--case", case, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode:
            raise SystemExit(f"case {case} failed:\n{child.stderr[-3000:]}")
        results[case] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"SDXL base architecture (random weights), 1024 px, batch 1, bf16, {torch.cuda.get_device_name()}")
    for case in CASES:
        got, (gb, s_it) = results[case], estimate(case)
        print(
            f"{case:5s} s/it {got['s_per_it']:.3f} (plan, RTX 4090: {s_it:.2f})   peak VRAM {got['peak_gib']:.2f} GiB "
            f"= {got['peak_gib'] * 2**30 / 1e9:.2f} GB (reserved {got['reserved_gib']:.2f} GiB; plan {gb:.1f} GB, "
            f"measured / plan {got['peak_gib'] * 2**30 / 1e9 / gb:.2f})"
        )
    both, unet = results["both"], results["unet"]
    print(
        f"both / unet: time x{both['s_per_it'] / unet['s_per_it']:.2f}, "
        f"peak x{both['peak_gib'] / unet['peak_gib']:.2f}"
    )


if __name__ == "__main__":
    main()
