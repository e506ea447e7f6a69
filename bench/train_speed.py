"""Training throughput and peak memory: our loop (cache_latents on and off) against a plain diffusers + accelerate
DreamBooth loop (the structure of diffusers' ``train_dreambooth.py`` example, written here for the benchmark) on the
same tiny model and the same images, in one run.

    python bench/train_speed.py [--data PATH_TO_bench_dev] [--images 8] [--steps 24] [--resolution 128]

Each variant runs in its own subprocess (peak RSS from ``resource.getrusage``, so one variant's memory cannot hide
another's); steps/s is measured over the steps after the first few (warm-up), setup excluded. Images are the first
``--images`` rows labelled ``ok`` of ``../shared/bench_dev`` (override with ``--data`` or ``DREAMCURATE_BENCH_DEV``),
symlinked into a Kohya folder. Targets: our steps/s >= the plain loop's; less memory with cached latents.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchdata import DEFAULT_DATA, link_or_copy  # noqa: E402

WARMUP = 4
BATCH = 2
LR = 1e-5


def build_inputs(data: Path, count: int, work: Path) -> tuple[Path, Path, Path]:
    """The tiny model as a single file and as a diffusers folder, and a Kohya folder of ``count`` ok images."""
    from trainer.models.tiny import write_tiny_diffusers, write_tiny_model

    with open(data / "manifest.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] == "ok"][:count]
    folder = work / "data" / "1_sks"
    folder.mkdir(parents=True)
    for index, row in enumerate(rows):
        source = data / row["path"]
        link_or_copy(source, folder / f"img{index:02d}{source.suffix}")
        (folder / f"img{index:02d}.txt").write_text(f"sks, photo {index}, outdoors")
    return (
        write_tiny_model(work / "tiny.safetensors"),
        write_tiny_diffusers(work / "tiny-diffusers"),
        work / "data",
    )


# ---- the variants (each in a child process) ---------------------------------------------------------------------


def run_ours(work: Path, steps: int, resolution: int, cache: bool) -> dict[str, float]:
    """Our trainer (``trainer.loop.train``) for ``steps`` steps; rate from its own step events."""
    from curator.settings.config import TrainConfig
    from trainer.events import read_events
    from trainer.loop import train

    out = work / f"ours-{'cache' if cache else 'nocache'}"
    config = TrainConfig(
        pretrained_model_name_or_path=str(work / "tiny.safetensors"),
        train_data_dir=str(work / "data"),
        output_dir=str(out),
        resolution=resolution,
        min_bucket_reso=64,
        max_bucket_reso=256,
        enable_bucket=False,  # the plain loop crops squares; same pixels per step for both
        max_train_epochs=0,
        max_train_steps=steps,
        train_batch_size=BATCH,
        learning_rate=LR,
        mixed_precision="no",
        cache_latents=cache,
        shuffle_caption=False,
        save_every_n_epochs=0,
        save_state=False,
    )
    train(config, show_progress=False)
    times = [e["time"] for e in read_events(out / "events.jsonl") if e["event"] == "step"]
    return {"steps_per_s": (len(times) - WARMUP) / (times[-1] - times[WARMUP - 1])}


def run_plain(work: Path, steps: int, resolution: int) -> dict[str, float]:
    """A plain diffusers + accelerate DreamBooth loop: Dataset + DataLoader with torchvision transforms, the VAE
    encoding every batch, text encoder trained, AdamW, constant LR, gradient clipping."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from PIL import Image
    from torchvision import transforms
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = work / "tiny-diffusers"
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    noise_scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    vae.requires_grad_(False)

    images = sorted(p for p in (work / "data" / "1_sks").iterdir() if p.suffix != ".txt")
    prep = transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )

    class DreamBoothDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            image = Image.open(images[index]).convert("RGB")
            caption = images[index].with_suffix(".txt").read_text()
            ids = tokenizer(
                caption, padding="max_length", truncation=True, max_length=77, return_tensors="pt"
            )
            return {"pixel_values": prep(image), "input_ids": ids.input_ids[0]}

    loader = torch.utils.data.DataLoader(DreamBoothDataset(), batch_size=BATCH, shuffle=True)
    accelerator = Accelerator(mixed_precision="no")
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=LR)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer)
    unet, text_encoder, optimizer, loader, lr_scheduler = accelerator.prepare(
        unet, text_encoder, optimizer, loader, lr_scheduler
    )
    vae.to(accelerator.device)
    unet.train()
    text_encoder.train()
    done, marks = 0, []
    while done < steps:
        for batch in loader:
            with accelerator.accumulate(unet):
                latents = vae.encode(batch["pixel_values"]).latent_dist.sample() * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],))
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                states = text_encoder(batch["input_ids"])[0]
                prediction = unet(noisy, timesteps, states).sample
                loss = F.mse_loss(prediction.float(), noise.float(), reduction="mean")
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            done += 1
            marks.append(time.time())
            if done >= steps:
                break
    return {"steps_per_s": (len(marks) - WARMUP) / (marks[-1] - marks[WARMUP - 1])}


def child(variant: str, work: Path, steps: int, resolution: int) -> None:
    """Run one variant and print its numbers as JSON: peak RSS, and the peak above what the imports alone took."""
    import accelerate  # noqa: F401
    import diffusers  # noqa: F401
    import torch
    import torchvision  # noqa: F401
    import transformers  # noqa: F401

    from trainer import loop  # noqa: F401
    from trainer.models import io as model_io  # noqa: F401

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    imports_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if variant == "plain":
        numbers = run_plain(work, steps, resolution)
    else:
        numbers = run_ours(work, steps, resolution, cache=variant == "ours-cache")
    numbers["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    numbers["train_mb"] = numbers["peak_rss_mb"] - imports_mb
    print(json.dumps(numbers))


# ---- the parent -------------------------------------------------------------------------------------------------


def measure(variant: str, work: Path, steps: int, resolution: int, threads: int) -> dict[str, float]:
    """Run a variant in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", variant, "--work", str(work), "--steps", str(steps)]
    command += ["--resolution", str(resolution)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the three variants and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per variant (1: steadier numbers)"
    )
    parser.add_argument("--child", choices=["plain", "ours-cache", "ours-nocache"])
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work, args.steps, args.resolution)
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_inputs(args.data, args.images, work)
        results = {
            v: measure(v, work, args.steps, args.resolution, args.threads)
            for v in ("plain", "ours-nocache", "ours-cache")
        }
    plain = results["plain"]
    print(
        f"tiny SD1 model, {args.images} images at {args.resolution} px, batch {BATCH}, {args.steps} steps "
        f"({WARMUP} warm-up), text encoder trained, float32, torch {torch.__version__}, "
        f"{args.threads} torch thread(s), device cpu"
    )
    print(
        f"{'loop':<34}{'steps/s':>9}{'vs plain':>10}{'peak RSS MB':>13}{'above imports':>15}{'vs plain':>10}"
    )
    for name, label in (
        ("plain", "plain diffusers+accelerate loop"),
        ("ours-nocache", "dreamcurate, cache_latents off"),
        ("ours-cache", "dreamcurate, cache_latents on"),
    ):
        r = results[name]
        print(
            f"{label:<34}{r['steps_per_s']:>9.2f}{r['steps_per_s'] / plain['steps_per_s']:>9.2f}x"
            f"{r['peak_rss_mb']:>13.0f}{r['train_mb']:>15.0f}{r['train_mb'] / plain['train_mb']:>9.2f}x"
        )
    best = max(results["ours-cache"]["steps_per_s"], results["ours-nocache"]["steps_per_s"])
    print(
        f"targets: throughput >= plain: {'met' if best >= plain['steps_per_s'] else 'MISSED'}; "
        f"cached latents use less memory than plain: "
        f"{'met' if results['ours-cache']['train_mb'] < plain['train_mb'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
