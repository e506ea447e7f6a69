"""Kohya-style runs on the tiny model: a kohya_ss train_db.py TOML (SD 1 and SD 2) trains with no notice, the
Kohya keys train together, the LR schedule waits on a skipped fp16 step."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_testkit import SQUARE, WIDE, fast_config, make_images

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _kohya_ss_toml(model: Path, data: Path, out: Path, sd2: bool) -> str:
    """A train_db.py config as kohya_ss writes it (false / 0 / "" values left out by the GUI, its own keys in)."""
    lines = [
        "bucket_no_upscale = true",
        "bucket_reso_steps = 32",
        "cache_latents = true",
        'caption_extension = ".txt"',
        "clip_skip = 2",
        'dynamo_backend = "no"',
        "enable_bucket = true",
        "epoch = 1",
        "gradient_accumulation_steps = 1",
        "huber_c = 0.1",
        'huber_schedule = "snr"',
        "learning_rate = 1e-05",
        f'logging_dir = "{out / "log"}"',
        'loss_type = "l2"',
        'lr_scheduler = "cosine"',
        "lr_scheduler_args = []",
        "lr_scheduler_num_cycles = 1",
        "lr_scheduler_power = 1",
        "lr_warmup_steps = 1",
        "max_bucket_reso = 128",
        "max_data_loader_n_workers = 0",
        "max_grad_norm = 1",
        "max_timestep = 1000",
        "max_token_length = 75",
        "max_train_steps = 3",
        "min_bucket_reso = 64",
        'mixed_precision = "no"',
        "multires_noise_discount = 0.3",
        'noise_offset_type = "Original"',
        "optimizer_args = []",
        'optimizer_type = "AdamW"',
        f'output_dir = "{out}"',
        'output_name = "last"',
        f'pretrained_model_name_or_path = "{model}"',
        "prior_loss_weight = 1",
        'resolution = "96,96"',
        'save_model_as = "safetensors"',
        'save_precision = "fp16"',
        "sdpa = true",
        "seed = 1234",
        "shuffle_caption = true",
        "train_batch_size = 1",
        f'train_data_dir = "{data}"',
        'xformers = "sdpa"',
    ]
    if sd2:
        lines += ["v2 = true", "v_parameterization = true"]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_a_kohya_ss_train_db_config_trains_with_no_notice(tmp_path: Path, family: str) -> None:
    from click.testing import CliRunner
    from safetensors import safe_open

    from trainer.commands.train import train as train_command
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors", family=family)
    make_images(tmp_path / "img" / "2_sks dog", [SQUARE, WIDE])
    config = tmp_path / "kohya.toml"
    config.write_text(_kohya_ss_toml(model, tmp_path / "img", tmp_path / "out", family == "sd2"))
    result = CliRunner().invoke(train_command, [str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "notice" not in result.output and "trained 3 steps" in result.output
    with safe_open(str(tmp_path / "out" / "last.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["ss_base_model_version"] == ("sd_v2_v" if family == "sd2" else "sd_v1")
    assert list((tmp_path / "out" / "log").rglob("events.out.tfevents.*"))  # tensorboard, as Kohya logs


def test_v2_on_an_sd1_model_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    from curator.settings.config import ConfigError
    from trainer.loop import load_models

    config = fast_config(tiny_model, tmp_path, tmp_path / "out", v2=True)
    with pytest.raises(ConfigError, match="v2 = true, but .* is an SD 1.x model"):
        load_models(config)


@pytest.mark.slow
def test_kohya_keys_train_together(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.loop import train

    make_images(tmp_path / "data" / "1_sks", [SQUARE, WIDE], caption="sks, red, blue, green")
    common = {"max_train_epochs": 2, "caption_tag_dropout_rate": 0.3, "caption_prefix": "photo"}
    cached = fast_config(
        tiny_model,
        tmp_path / "data",
        tmp_path / "a",
        flip_aug=True,
        zero_terminal_snr=True,
        min_snr_gamma=5.0,
        min_timestep=100,
        max_timestep=900,
        loss_type="huber",
        optimizer_type="Lion",
        learning_rate=1e-5,
        caption_dropout_every_n_epochs=2,
        mixed_precision="bf16",
        full_bf16=True,
        **common,
    )
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # one precision per process in accelerate: this test trains in two
    try:
        result = train(cached, show_progress=False)
    finally:
        AcceleratorState._reset_state()
    assert result.steps == 4 and all(torch.isfinite(torch.tensor(result.losses)))
    uncached = fast_config(
        tiny_model,
        tmp_path / "data",
        tmp_path / "b",
        cache_latents=False,
        random_crop=True,
        flip_aug=True,
        loss_type="smooth_l1",
        huber_schedule="exponential",
        optimizer_type="Prodigy",
        learning_rate=1.0,
        lr_scheduler="polynomial",
        lr_scheduler_power=2.0,
        max_data_loader_n_workers=2,
        **common,
    )
    result = train(uncached, show_progress=False)
    assert result.steps == 4 and all(torch.isfinite(torch.tensor(result.losses)))


def test_the_lr_schedule_waits_on_a_skipped_fp16_step(tiny_model: Path, tmp_path: Path) -> None:
    """accelerate's rule (and so Kohya's): when the fp16 gradient scaler finds inf gradients it skips the update,
    and the learning-rate schedule does not advance. The scaler is mocked (no GPU here)."""
    from accelerate.optimizer import patch_optimizer_step

    from trainer.loop import optimizer_step, setup_run

    class Scaler:
        """GradScaler's contract as AcceleratedOptimizer uses it: step() calls optimizer.step() unless it found
        inf / NaN gradients."""

        overflow = True

        def step(self, optimizer: object, closure: object = None) -> None:
            if not self.overflow:
                optimizer.step()  # type: ignore[attr-defined]

        def update(self) -> None:
            pass

    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 2)
    config = fast_config(
        tiny_model, tmp_path / "data", tmp_path / "out", lr_scheduler="linear", max_train_epochs=5
    )
    run = setup_run(config, resume=False, show_progress=False)
    opt = run.optimizer
    opt.scaler = scaler = Scaler()
    opt._accelerate_step_called = False
    opt._optimizer_original_step_method = opt.optimizer.step
    opt._optimizer_patched_step_method = patch_optimizer_step(opt, opt.optimizer.step)
    batches = run.data.epoch_batches(1)
    before = [p.detach().clone() for p in list(run.unet.parameters())[:3]]
    optimizer_step(run, [batches[0]], 0)
    assert run.accelerator.optimizer_step_was_skipped and run.lr_scheduler.last_epoch == 0
    assert all(torch.equal(b, p) for b, p in zip(before, list(run.unet.parameters())[:3], strict=False))
    scaler.overflow = False
    optimizer_step(run, [batches[1]], 1)
    assert not run.accelerator.optimizer_step_was_skipped and run.lr_scheduler.last_epoch == 1
    run.events.close()
