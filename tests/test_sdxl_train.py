"""SDXL training on the CPU with the tiny SDXL model: the plan's steps are the optimizer's, size and crop
conditioning per image is Kohya's formula, the loss falls when over-fitting, encoders train with their own rates,
cached text-encoder outputs equal the live ones, resume after SIGKILL reaches the planned step."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_testkit import fast_config, make_images

from curator.settings.config import ConfigError, write_config

#: Kohya's documented SDXL Adafactor options: a fixed learning rate (no relative step, no parameter scaling)
KOHYA_SDXL_ADAFACTOR = ["scale_parameter=False", "relative_step=False", "warmup_init=False"]


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl.safetensors", "sdxl")


def kohya_crop_top_left(width: int, height: int, bucket_w: int, bucket_h: int) -> tuple[int, int]:
    """Kohya's get_crop_ltrb, restated: fit the image inside the bucket keeping its aspect, centre it; the offsets
    (floored) are the crop's top and left."""
    if bucket_w / bucket_h > width / height:
        fitted_w, fitted_h = bucket_h * width / height, bucket_h
    else:
        fitted_w, fitted_h = bucket_w, bucket_w * height / width
    return int((bucket_h - fitted_h) // 2), int((bucket_w - fitted_w) // 2)


@pytest.mark.parametrize(
    ("original", "bucket", "expected"),
    [
        # 4:3 in a 1.29 bucket: fit the width, 1152 x 864 centred in 896 -> top 16
        ((1000, 750), (1152, 896), (750, 1000, 16, 0, 896, 1152)),
        # fit the width: 640 x 1493.3 in 1536 -> top floor(21.3) = 21
        ((333, 777), (640, 1536), (777, 333, 21, 0, 1536, 640)),
        # 2.002 vs 2.0: fit the width, 1408 x 703.3 in 704 -> top floor(0.35) = 0
        ((1001, 500), (1408, 704), (500, 1001, 0, 0, 704, 1408)),
        # narrower than the bucket: fit the height, 94.8 x 128 in 96 -> left floor(0.6) = 0
        ((97, 131), (96, 128), (131, 97, 0, 0, 128, 96)),
        # 150 x 67 in 128 x 64: fit the width, 128 x 57.2 in 64 -> top floor(3.4) = 3
        ((150, 67), (128, 64), (67, 150, 3, 0, 64, 128)),
    ],
)
def test_size_conditioning_is_kohyas_formula(
    original: tuple[int, int], bucket: tuple[int, int], expected: tuple[int, ...]
) -> None:
    from trainer.sdxl import size_conditioning

    assert size_conditioning(original, bucket) == expected
    assert expected[2:4] == kohya_crop_top_left(*original, *bucket)


def _spy_time_ids(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, int], list[list[int]]]]:
    """Record (bucket, time_ids) of every batch the UNet sees."""
    import trainer.sdxl as sdxl

    seen: list[tuple[tuple[int, int], list[list[int]]]] = []
    real = sdxl.added_conditions

    def spy(pooled: Any, samples: Any) -> dict[str, Any]:
        added = real(pooled, samples)
        seen.append((samples[0].bucket, added["time_ids"].long().tolist()))
        return added

    monkeypatch.setattr(sdxl, "added_conditions", spy)
    return seen


@pytest.mark.slow
def test_odd_sized_images_train_with_kohyas_conditioning_and_the_plans_steps(
    tiny_sdxl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curator.plan import steps as plan
    from trainer.data import build_training_data
    from trainer.loop import train

    sizes = [(97, 131), (150, 67), (123, 123), (71, 140), (133, 101)]
    make_images(tmp_path / "data" / "2_sks", sizes)
    config = fast_config(
        tiny_sdxl, tmp_path / "data", tmp_path / "out", max_train_epochs=2, train_batch_size=2
    )
    data = build_training_data(config)
    counts = plan.bucket_counts(data.entries, plan.BucketSettings.of(config))
    per_epoch = plan.steps_per_epoch(counts, 2, 1, 1)
    seen = _spy_time_ids(monkeypatch)

    result = train(config, show_progress=False)

    assert result.steps == result.optimizer_steps == per_epoch * 2 == data.schedule.total_steps
    assert result.te_optimizer_steps == 0  # SDXL: text encoders frozen by default
    expected = {}
    for sample in data.samples.values():
        width, height = sample.original
        top, left = kohya_crop_top_left(width, height, *sample.bucket)
        expected[sample.item.path.name] = [height, width, top, left, sample.bucket[1], sample.bucket[0]]
    rows = [row for _, batch_rows in seen for row in batch_rows]
    assert len(rows) == sum(len(b.samples) for e in (1, 2) for b in data.epoch_batches(e))
    assert {tuple(r) for r in rows} == {tuple(v) for v in expected.values()}
    assert any(r[2] or r[3] for r in rows), "no image had a crop offset: the test needs odd aspect ratios"


def _smooth_images(folder: Path, count: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    grid = np.linspace(0, 1, 64, dtype=np.float32)
    for index in range(count):
        hue = np.array([index % 2, (index // 2) % 2, 0.5], dtype=np.float32)
        Image.fromarray((np.outer(grid, grid)[..., None] * hue * 255).astype(np.uint8)).save(
            folder / f"i{index}.png"
        )
        (folder / f"i{index}.txt").write_text(f"sks, image {index}")


@pytest.mark.slow
def test_overfitting_four_images_lowers_the_loss(tiny_sdxl: Path, tmp_path: Path) -> None:
    from trainer.loop import train

    _smooth_images(tmp_path / "data" / "1_sks", 4)
    config = fast_config(
        tiny_sdxl,
        tmp_path / "data",
        tmp_path / "out",
        resolution=64,
        enable_bucket=False,
        train_batch_size=4,
        max_train_epochs=30,
        learning_rate=2e-3,
        shuffle_caption=False,
        cache_text_encoder_outputs=True,
        optimizer_type="Adafactor",
        optimizer_args=KOHYA_SDXL_ADAFACTOR,
        fused_backward_pass=True,  # the 10 GB recipe of sd-scripts PR 1259, here on the CPU
    )
    result = train(config, show_progress=False)
    assert result.steps == result.optimizer_steps == 30
    first, last = result.losses[:10], result.losses[-10:]
    assert sum(last) / len(last) < 0.5 * (sum(first) / len(first)), (first, last)


@pytest.mark.slow
def test_fused_backward_pass_equals_the_ordinary_step() -> None:
    from transformers.optimization import Adafactor

    from trainer.fused_backward import install

    def model_and_optimizer() -> tuple[torch.nn.Module, Any]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        return net, Adafactor(net.parameters(), lr=1e-2, scale_parameter=False, relative_step=False)

    x = torch.randn(5, 8)
    plain, plain_opt = model_and_optimizer()
    fused, fused_opt = model_and_optimizer()
    install(fused_opt, max_grad_norm=0.0)
    for _ in range(3):
        plain(x).pow(2).mean().backward()
        plain_opt.step()
        plain_opt.zero_grad()
        fused(x).pow(2).mean().backward()  # the update happens here
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), fused.parameters(), strict=True))
    assert all(p.grad is None for p in fused.parameters())
    # after a resume (load_state_dict replaces the group dicts) the hooks read the current groups' rates
    fused_opt.load_state_dict(fused_opt.state_dict())
    fused_opt.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in fused.parameters()]
    fused(x).pow(2).mean().backward()
    assert all(torch.equal(a, b) for a, b in zip(before, fused.parameters(), strict=True))
    assert any(
        not torch.equal(a, b)
        for a, b in zip(plain.parameters(), model_and_optimizer()[0].parameters(), strict=True)
    )


def test_fused_backward_pass_settings_are_checked(tmp_path: Path) -> None:
    config = fast_config(tmp_path, tmp_path, tmp_path, fused_backward_pass=True, mixed_precision="bf16")
    with pytest.raises(ConfigError, match="Adafactor"):
        config.validate(check_paths=False)
    with pytest.raises(ConfigError, match="gradient_accumulation_steps"):
        config.replace(optimizer_type="Adafactor", gradient_accumulation_steps=2).validate(check_paths=False)
    with pytest.raises(ConfigError, match="fp16"):
        config.replace(optimizer_type="Adafactor", mixed_precision="fp16").validate(check_paths=False)


@pytest.mark.slow
def test_each_encoder_trains_only_with_its_own_rate(tiny_sdxl: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from trainer.loop import train

    make_images(tmp_path / "data" / "1_sks", [(96, 96)] * 2)
    config = fast_config(
        tiny_sdxl,
        tmp_path / "data",
        tmp_path / "out",
        train_text_encoder=True,
        learning_rate_te1=0.0,  # Kohya: 0 keeps encoder 1 frozen
        learning_rate_te2=5e-4,
        optimizer_type="Adafactor",
        gradient_checkpointing=True,
    )
    result = train(config, show_progress=False)
    assert result.steps == result.te_optimizer_steps == 2
    base, trained = load_file(str(tiny_sdxl)), load_file(str(result.final_path))
    te1 = [k for k in base if k.startswith("conditioner.embedders.0.")]
    te2 = [k for k in base if k.startswith("conditioner.embedders.1.") and "logit_scale" not in k]
    assert all(torch.equal(base[k], trained[k]) for k in te1)
    assert any(not torch.equal(base[k], trained[k]) for k in te2)


def test_cached_text_outputs_equal_the_live_encoders(tiny_sdxl: Path) -> None:
    from trainer.models.io import load_model
    from trainer.sdxl import TextCache, encode_captions

    model = load_model(tiny_sdxl)
    captions = ["sks dog, red", "a very long caption " * 30]
    cache = TextCache.build(model, captions, max_token_length=150)
    states, pooled = cache.batch(captions, "cpu")
    with torch.no_grad():
        live_states, live_pooled = encode_captions(
            (model.tokenizer, model.tokenizer_2), (model.text_encoder, model.text_encoder_2), captions, 150
        )
    assert states.shape == (2, 152, 32 + 64) and pooled.shape == (2, 64)
    assert torch.allclose(states, live_states) and torch.allclose(pooled, live_pooled)


def test_cache_needs_fixed_captions_and_frozen_encoders(tiny_sdxl: Path, tmp_path: Path) -> None:
    config = fast_config(tiny_sdxl, tmp_path, tmp_path / "out", cache_text_encoder_outputs=True)
    with pytest.raises(ConfigError, match="shuffle_caption"):
        config.validate(check_paths=False)
    with pytest.raises(ConfigError, match="train_text_encoder"):
        config.replace(shuffle_caption=False, train_text_encoder=True).validate(check_paths=False)


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_planned_step(tiny_sdxl: Path, tmp_path: Path) -> None:
    import os

    from trainer.events import read_events

    make_images(tmp_path / "data" / "1_sks", [(96, 96)] * 2)
    out = tmp_path / "out"
    config = fast_config(
        tiny_sdxl,
        tmp_path / "data",
        out,
        resolution=64,
        max_train_epochs=8,
        save_every_n_steps=2,
        save_state=True,
    )
    config_path = tmp_path / "train.toml"
    write_config(config, config_path)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "trainer", str(config_path), "--no-progress"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            events = read_events(out / "events.jsonl") if (out / "events.jsonl").exists() else []
            if any(e["event"] == "checkpoint" and e["step"] >= 4 for e in events):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = read_events(out / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from_step"] >= 4
    assert (
        events[-1]["event"] == "end" and events[-1]["step"] == 16 == starts[0]["total_steps"]
    )  # 2 images x 8


def test_samples_render_with_the_sdxl_pipeline(tiny_sdxl: Path, tmp_path: Path) -> None:
    from PIL import Image

    from curator.settings.prompts import SamplePrompt
    from trainer.models.io import load_model
    from trainer.sampling import render_samples

    model = load_model(tiny_sdxl)
    prompts = ["sks dog", SamplePrompt("sks dog on grass", width=96, height=64, negative="blurry")]
    paths = render_samples(model, prompts, tmp_path, "m", steps=2, size=(64, 64), seed=1, sampler="euler")
    assert [Image.open(p).size for p in paths] == [(64, 64), (96, 64)]


@pytest.mark.slow
def test_a_cached_run_renders_samples_at_its_save_point(tiny_sdxl: Path, tmp_path: Path) -> None:
    from trainer.loop import train

    make_images(tmp_path / "data" / "1_sks", [(96, 96)] * 2)
    config = fast_config(
        tiny_sdxl,
        tmp_path / "data",
        tmp_path / "out",
        resolution=64,
        shuffle_caption=False,
        cache_text_encoder_outputs=True,
        sample_prompts=["sks dog"],
        sample_steps=2,
    )
    result = train(config, show_progress=False)
    assert result.steps == 2 and len(result.samples) == 1 and result.samples[0].is_file()


@pytest.mark.slow
def test_two_processes_train_sdxl_with_an_encoder_to_its_stop_step(tiny_sdxl: Path, tmp_path: Path) -> None:
    """torchrun on the CPU (gloo), as accelerate launch on two GPUs: DDP-wrapped UNet and encoder 2."""
    import os

    from trainer.events import read_events

    make_images(tmp_path / "data" / "1_sks", [(96, 96)] * 3 + [(140, 70)] * 2)
    config = fast_config(
        tiny_sdxl,
        tmp_path / "data",
        tmp_path / "out",
        max_train_epochs=2,
        gradient_accumulation_steps=2,
        text_encoder_sensitivity=0.5,
        train_text_encoder=True,
        learning_rate_te1=0.0,
    )
    write_config(config, tmp_path / "train.toml")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "trainer", str(tmp_path / "train.toml"), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path / "out" / "events.jsonl")
    start = next(e for e in events if e["event"] == "start")
    assert start["processes"] == 2 and start["total_steps"] == 4  # ceil(5 / (2 x 2)) x 2 epochs
    assert [e["step"] for e in events if e["event"] == "te_stop"] == [2]
    assert events[-1]["event"] == "end" and events[-1]["step"] == 4
