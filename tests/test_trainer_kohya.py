"""Kohya sd-scripts' training keys, each compared with a few lines re-implementing Kohya's formula (train_util.py,
custom_train_functions.py, train_db.py), and Kohya-style configs that train with no notice."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.dataset.discover import Item
from curator.plan.steps import schedule as schedule_for
from curator.settings.config import ConfigError, TrainConfig
from trainer.data import Augment, Batch, Sample, batch_augments, batch_captions, load_pixels

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sd_scheduler() -> object:
    from trainer.models.io import make_noise_scheduler

    return make_noise_scheduler(False)


# ---- noise and loss -----------------------------------------------------------------------------------------------


def test_zero_terminal_snr_rescales_betas_as_kohya() -> None:
    from trainer.noise import training_scheduler

    base = _sd_scheduler()
    rescaled = training_scheduler(base, zero_terminal_snr=True)
    # Kohya's enforce_zero_terminal_snr, re-implemented
    sqrt_bar = (1 - base.betas).cumprod(0).sqrt()
    first, last = sqrt_bar[0].clone(), sqrt_bar[-1].clone()
    sqrt_bar = (sqrt_bar - last) * first / (first - last)
    bar = sqrt_bar**2
    kohya_betas = 1 - torch.cat([bar[0:1], bar[1:] / bar[:-1]])
    assert torch.allclose(rescaled.betas, kohya_betas, rtol=1e-3)  # float32 ratios of near-equal numbers
    assert float(rescaled.alphas_cumprod[-1]) == 0.0
    assert torch.allclose(rescaled.alphas_cumprod, torch.cumprod(1 - kohya_betas, 0), atol=1e-6)
    assert base.alphas_cumprod[-1] > 0  # the model's schedule (Min-SNR's SNR table, as in Kohya) is untouched
    assert training_scheduler(base, zero_terminal_snr=False) is base


@pytest.mark.parametrize("schedule", ["snr", "exponential", "constant"])
@pytest.mark.parametrize("loss_type", ["huber", "smooth_l1"])
def test_huber_losses_equal_kohyas(loss_type: str, schedule: str) -> None:
    from trainer.loss import diffusion_loss

    scheduler = _sd_scheduler()
    config = TrainConfig(loss_type=loss_type, huber_schedule=schedule, huber_c=0.2, huber_scale=1.5)
    gen = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
    steps = torch.tensor([0, 400, 999])
    # Kohya's get_huber_threshold_if_needed + conditional_loss
    if schedule == "exponential":
        c = torch.exp(-(-math.log(0.2) / 1000) * steps) * 1.5
    elif schedule == "snr":
        bar = scheduler.alphas_cumprod[steps]
        c = (1 - 0.2) / (1 + ((1 - bar) / bar) ** 0.5) ** 2 + 0.2
    else:
        c = torch.full((3,), 0.2 * 1.5)
    c = c.view(-1, 1, 1, 1)
    core = 2 * (torch.sqrt((prediction - target) ** 2 + c**2) - c)
    expected = (core * c if loss_type == "huber" else core).mean(dim=[1, 2, 3])
    assert torch.allclose(diffusion_loss(prediction, target, steps, scheduler, config), expected, atol=1e-6)


def test_l2_and_l1_losses() -> None:
    from trainer.loss import diffusion_loss

    prediction, target = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    steps = torch.tensor([1, 2])
    l2 = diffusion_loss(prediction, target, steps, _sd_scheduler(), TrainConfig())
    l1 = diffusion_loss(prediction, target, steps, _sd_scheduler(), TrainConfig(loss_type="l1"))
    assert torch.allclose(l2, ((prediction - target) ** 2).mean(dim=[1, 2, 3]))
    assert torch.allclose(l1, (prediction - target).abs().mean(dim=[1, 2, 3]))


def test_timesteps_stay_between_min_and_max() -> None:
    from trainer.noise import sample_timesteps

    steps = sample_timesteps(TrainConfig(min_timestep=200, max_timestep=300), 5000, "cpu")
    assert int(steps.min()) >= 200 and int(steps.max()) <= 299 and len(set(steps.tolist())) == 100
    assert sample_timesteps(TrainConfig(min_timestep=500, max_timestep=500), 3, "cpu").tolist() == [500] * 3
    with pytest.raises(ConfigError, match="min_timestep <= max_timestep"):
        TrainConfig(min_timestep=10, max_timestep=5).validate(check_paths=False)


# ---- data ---------------------------------------------------------------------------------------------------------


def _sample(tmp_path: Path, size: tuple[int, int], bucket: tuple[int, int], caption: str = "") -> Sample:
    pixels = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    text = None
    if caption:
        text = tmp_path / "a.txt"
        text.write_text(caption)
    item = Item(path=tmp_path / "a.png", rel="a.png", concept="sks", repeats=1, caption_path=text)
    return Sample(item, bucket, size)


def test_flip_aug_mirrors_the_image_for_about_half_the_views(tmp_path: Path) -> None:
    sample = _sample(tmp_path, (64, 64), (64, 64))
    plain, flipped = load_pixels(sample), load_pixels(sample, Augment(flip=True))
    assert torch.equal(flipped, torch.flip(plain, dims=[2]))
    batch = Batch((64, 64), (sample,))
    config = TrainConfig(flip_aug=True)
    flips = [batch_augments(batch, config, epoch=1, index=i)[0].flip for i in range(400)]
    assert 150 < sum(flips) < 250
    assert flips == [
        batch_augments(batch, config, epoch=1, index=i)[0].flip for i in range(400)
    ]  # reproducible
    assert not any(a.flip for i in range(50) for a in batch_augments(batch, TrainConfig(), 1, i))


def test_random_crop_takes_kohyas_offsets(tmp_path: Path) -> None:
    sample = _sample(tmp_path, (96, 64), (64, 64))  # 32 px to trim in width, none in height
    full = torch.from_numpy(np.asarray(Image.open(tmp_path / "a.png"), dtype=np.float32) / 127.5 - 1.0)
    full = full.permute(2, 0, 1)
    assert torch.equal(load_pixels(sample), full[:, :, 16:80])  # centre: trim // 2
    seed = "42:1:0:0:augment"
    left = random.Random(seed + ":crop").randint(
        0, 32
    )  # Kohya: random.randint(0, trim_size), both ends included
    assert torch.equal(load_pixels(sample, Augment(crop_seed=seed)), full[:, :, left : left + 64])
    with pytest.raises(ConfigError, match="random_crop needs cache_latents = false"):
        TrainConfig(random_crop=True).validate(check_paths=False)


def test_tag_dropout_prefix_suffix_and_epoch_dropout(tmp_path: Path) -> None:
    tags = [f"t{i}" for i in range(20)]
    sample = _sample(tmp_path, (64, 64), (64, 64), caption="sks, " + ", ".join(tags))
    batch = Batch((64, 64), (sample,))
    config = TrainConfig(keep_tokens=1, shuffle_caption=False, caption_tag_dropout_rate=0.5)
    captions = [batch_captions(batch, config, epoch=1, index=i)[0] for i in range(200)]
    kept = [c.split(", ") for c in captions]
    assert all(k[0] == "sks" for k in kept)  # the kept tag never drops
    assert 0.4 < sum(len(k) - 1 for k in kept) / (200 * 20) < 0.6
    assert all(k[1:] == [t for t in tags if t in k[1:]] for k in kept)  # no shuffle: order kept
    # Kohya: prefix and suffix join the caption before shuffling; "sks" (kept) is now the prefix
    config = TrainConfig(keep_tokens=1, caption_prefix="photo,", caption_suffix=", end")
    text = batch_captions(batch, config, epoch=1, index=0)[0]
    assert text.startswith("photo, ") and "end" in text.split(", ")
    every = TrainConfig(caption_dropout_every_n_epochs=2)
    assert batch_captions(batch, every, epoch=1, index=0)[0] and batch_captions(batch, every, 2, 0) == [""]


def test_text_encoder_stop_and_rate_zero_mean_what_they_mean_in_sd_scripts() -> None:
    counts = {(64, 64): 4}
    base = TrainConfig(max_train_epochs=2)
    assert schedule_for(base, counts).te_stop_step is None  # unset: trains to the end
    for stop in (0, -1):  # train_db.py: stops at global_step 0, or never starts
        assert schedule_for(base.replace(stop_text_encoder_training=stop), counts).te_stop_step == 0
    assert schedule_for(base.replace(stop_text_encoder_training=3), counts).te_stop_step == 3
    assert schedule_for(base.replace(learning_rate_te=0.0), counts).te_stop_step == 0  # rate 0: never changes


# ---- optimizers and schedules -------------------------------------------------------------------------------------


def _module() -> torch.nn.Module:
    return torch.nn.Linear(4, 2)


@pytest.mark.parametrize(
    ("optimizer_type", "args", "cls", "defaults"),
    [
        ("AdamW", ["weight_decay=0.1 betas=0.8,0.9"], "AdamW", {"weight_decay": 0.1, "betas": (0.8, 0.9)}),
        ("adamw", [], "AdamW", {"weight_decay": 0.01}),
        ("SGDNesterov", [], "SGD", {"momentum": 0.9, "nesterov": True}),
        ("Lion", ["weight_decay=0.5"], "Lion", {"weight_decay": 0.5}),
        ("Prodigy", ["d_coef=2.0"], "Prodigy", {"d_coef": 2.0}),
        (
            "Adafactor",
            ["relative_step=False", "scale_parameter=False"],
            "Adafactor",
            {"relative_step": False},
        ),
    ],
)
def test_optimizers_by_kohyas_names(optimizer_type: str, args: list[str], cls: str, defaults: dict) -> None:
    from trainer.optim import make_lr_scheduler, make_optimizer

    config = TrainConfig(optimizer_type=optimizer_type, optimizer_args=args, learning_rate=0.5)
    config.validate(check_paths=False)
    notices: list[str] = []
    optimizer = make_optimizer(config, _module(), None, notices)
    assert type(optimizer).__name__ == cls
    assert all(optimizer.defaults[k] == v for k, v in defaults.items())
    assert optimizer.param_groups[0]["lr"] == 0.5
    make_lr_scheduler(config, optimizer, 10).step()


def test_adafactor_relative_step_uses_its_own_rate_and_schedule() -> None:
    from transformers.optimization import AdafactorSchedule

    from trainer.optim import make_lr_scheduler, make_optimizer

    config = TrainConfig(optimizer_type="Adafactor", learning_rate=1e-3)
    optimizer = make_optimizer(config, _module(), _module(), [])
    assert optimizer.defaults["relative_step"] and optimizer.defaults["lr"] is None
    assert isinstance(make_lr_scheduler(config, optimizer, 10), AdafactorSchedule)
    with pytest.raises(ConfigError, match="own warm-up"):
        make_lr_scheduler(config.replace(lr_warmup_steps=2, lr_scheduler="linear"), optimizer, 10)


def test_a_missing_optimizer_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name)
    )
    config = TrainConfig(optimizer_type="AdamW8bit", pretrained_model_name_or_path="x", train_data_dir=".")
    with pytest.raises(ConfigError, match=r"needs bitsandbytes: pip install 'dreamcurate\[bnb\]'"):
        config.validate()
    with pytest.raises(ConfigError, match="optimizer_args: 'weight_decay' is not key=value"):
        TrainConfig(optimizer_args=["weight_decay"]).validate(check_paths=False)


def test_schedule_cycles_and_power() -> None:
    from trainer.optim import make_lr_scheduler, make_optimizer

    def rates(**changes: object) -> list[float]:
        config = TrainConfig(learning_rate=1.0, **changes)  # type: ignore[arg-type]
        optimizer = make_optimizer(config, _module(), None, [])
        scheduler = make_lr_scheduler(config, optimizer, 10)
        out = []
        for _ in range(10):
            out.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return out

    restarts = rates(lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=2)
    assert restarts[0] == restarts[5] == 1.0  # two cycles of 5 steps
    poly = rates(lr_scheduler="polynomial", lr_scheduler_power=2.0)
    # transformers' polynomial decay to lr_end 1e-7: (lr - end) * (1 - t / T) ** power + end
    assert all(abs(r - ((1 - 1e-7) * (1 - t / 10) ** 2 + 1e-7)) < 1e-9 for t, r in enumerate(poly))


def test_warm_up_with_constant_is_refused_as_in_kohya() -> None:
    with pytest.raises(ConfigError, match="lr_warmup_steps = 5 does nothing with lr_scheduler constant"):
        TrainConfig(lr_warmup_steps=5).validate(check_paths=False)
    TrainConfig(lr_warmup_steps=5, lr_scheduler="constant_with_warmup").validate(check_paths=False)


def test_metadata_uses_kohyas_versions_and_the_model_spec() -> None:
    from trainer.checkpoint import training_metadata

    config = TrainConfig(resolution=768, clip_skip=2, min_timestep=100)
    sd1 = training_metadata(config, 5, 1, "sd1")
    sd2v = training_metadata(config, 5, 1, "sd2", v_prediction=True)
    assert sd1["ss_base_model_version"] == "sd_v1" and sd2v["ss_base_model_version"] == "sd_v2_v"
    assert training_metadata(config, 5, 1, "sd2")["ss_base_model_version"] == "sd_v2"
    assert (
        sd1["modelspec.architecture"] == "stable-diffusion-v1"
        and sd1["modelspec.prediction_type"] == "epsilon"
    )
    assert (
        sd2v["modelspec.architecture"] == "stable-diffusion-v2-768-v"
        and sd2v["modelspec.prediction_type"] == "v"
    )
    assert sd1["modelspec.resolution"] == "768x768" and sd1["modelspec.encoder_layer"] == "2"
    assert sd1["modelspec.timestep_range"] == "100,1000"
