"""The trainer on the tiny model, CPU: it runs the plan's schedule exactly, learns, saves loadable weights, stops on
a NaN loss keeping the last checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from trainer_testkit import SQUARE, TALL, WIDE, fast_config, make_images

from curator.dataset.discover import discover
from curator.plan import steps as plan
from curator.settings.config import ConfigError, TrainConfig
from trainer.data import bucket_settings

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    # `make test` runs two workers on two cores: a second torch thread per worker only adds spin-waiting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def predicted(config: TrainConfig) -> tuple[int, int | None]:
    """What ``curator.plan.steps`` predicts for a config: (total optimizer steps, text-encoder stop step)."""
    reg = Path(config.reg_data_dir) if config.reg_data_dir else None
    dataset = discover(Path(config.train_data_dir), reg_root=reg)
    entries = []
    for item in dataset.items:
        with Image.open(item.path) as image:
            entries.append(plan.PlanEntry(item.rel, image.width, image.height, item.repeats, item.is_reg))
    counts = plan.bucket_counts(entries, bucket_settings(config))
    per_epoch = plan.steps_per_epoch(counts, config.train_batch_size, config.gradient_accumulation_steps)
    total = plan.total_steps(per_epoch, config.max_train_epochs or None, config.max_train_steps or None)
    explicit = 0 if config.stop_text_encoder_training == -1 else (config.stop_text_encoder_training or None)
    return total, plan.text_encoder_stop_step(total, config.text_encoder_sensitivity or None, explicit)


SHAPES = {
    # odd bucket counts (3 squares, 5 wide, 1 tall) with batch 2, two epochs, TE stops at half
    "odd_buckets_batch2": (
        {"1_sks": [SQUARE] * 3 + [WIDE] * 5 + [TALL]},
        {},
        {"train_batch_size": 2, "max_train_epochs": 2, "text_encoder_sensitivity": 0.5},
    ),
    # repeats and regularization images repeated to match, explicit stop step
    "repeats_and_reg": (
        {"2_sks": [SQUARE] * 3 + [WIDE]},
        {"1_dog": [SQUARE] * 3 + [TALL] * 2},
        {"stop_text_encoder_training": 5, "prior_loss_weight": 0.5},
    ),
    # gradient accumulation 3 over an odd number of batches (the last group is short)
    "accumulation": (
        {"3_sks": [SQUARE] * 2 + [WIDE] * 3},
        {},
        {
            "train_batch_size": 2,
            "gradient_accumulation_steps": 3,
            "max_train_epochs": 2,
            "text_encoder_sensitivity": 0.4,
        },
    ),
    # a step budget that ends mid-epoch, text encoder never trained
    "steps_mid_epoch": (
        {"1_sks": [SQUARE] * 3},
        {},
        {"max_train_epochs": 0, "max_train_steps": 5, "stop_text_encoder_training": -1},
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_steps_and_te_stop_equal_the_plan(shape: str, tiny_model: Path, tmp_path: Path) -> None:
    concepts, reg_concepts, settings = SHAPES[shape]
    for name, sizes in concepts.items():
        make_images(tmp_path / "data" / name, sizes)
    for name, sizes in reg_concepts.items():
        make_images(tmp_path / "reg" / name, sizes, caption="dog")
    reg = str(tmp_path / "reg") if reg_concepts else ""
    config = fast_config(tiny_model, tmp_path / "data", tmp_path / "out", reg_data_dir=reg, **settings)
    total, stop = predicted(config)

    from trainer.loop import train

    result = train(config, show_progress=False)

    assert result.optimizer_steps == total == result.steps
    expected_te = total if stop is None else min(stop, total)
    assert result.te_optimizer_steps == expected_te
    assert result.te_stop_step == stop
    assert len(result.losses) == total


def _tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def _smooth_images(folder: Path, count: int) -> None:
    import numpy as np

    folder.mkdir(parents=True)
    grid = np.linspace(0, 1, 64, dtype=np.float32)
    for index in range(count):
        hue = np.array([index % 2, (index // 2) % 2, 0.5], dtype=np.float32)
        pixels = (np.outer(grid, grid)[..., None] * hue * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
        (folder / f"img{index}.txt").write_text(f"sks, image {index}")


def test_overfitting_four_images_lowers_the_loss_and_saves_new_weights(
    tiny_model: Path, tmp_path: Path
) -> None:
    from trainer.loop import train
    from trainer.models.io import load_model

    _smooth_images(tmp_path / "data" / "1_sks", 4)
    config = fast_config(
        tiny_model,
        tmp_path / "data",
        tmp_path / "out",
        resolution=64,
        enable_bucket=False,
        train_batch_size=4,
        max_train_epochs=40,
        learning_rate=2e-3,
        save_state=True,
        shuffle_caption=False,
    )
    result = train(config, show_progress=False)

    first, last = result.losses[:10], result.losses[-10:]
    assert sum(last) / len(last) < 0.5 * (sum(first) / len(first)), (first, last)

    trained, base = load_model(result.final_path), load_model(tiny_model)
    trained_unet, base_unet = trained.unet.state_dict(), base.unet.state_dict()
    assert any(not torch.equal(trained_unet[k], base_unet[k]) for k in base_unet)
    # the file holds exactly the weights the run ended with (the resume state has them too)
    state_unet = _tensors(next((tmp_path / "out" / "state").glob("step-*")) / "model.safetensors", "")
    assert all(torch.equal(trained_unet[k], state_unet[k]) for k in state_unet)


def test_text_encoder_stops_changing_at_the_stop_step(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.loop import train

    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 2)
    config = fast_config(
        tiny_model,
        tmp_path / "data",
        tmp_path / "out",
        max_train_epochs=3,
        save_every_n_steps=1,
        stop_text_encoder_training=3,
    )
    result = train(config, show_progress=False)

    prefix = "cond_stage_model."
    saved = [_tensors(p, prefix) for p in result.checkpoints]
    base = _tensors(tiny_model, prefix)
    changed = [
        any(not torch.equal(s[k], prev[k]) for k in s)
        for prev, s in zip([base] + saved[:-1], saved, strict=True)
    ]
    assert changed == [True, True, True, False, False, False]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.events import read_events
    from trainer.loop import NAN_AT_STEP_ENV, TrainingError, train

    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 3)
    out = tmp_path / "out"
    config = fast_config(
        tiny_model, tmp_path / "data", out, max_train_epochs=3, save_every_n_steps=2, save_state=True
    )
    monkeypatch.setenv(NAN_AT_STEP_ENV, "5")
    with pytest.raises(TrainingError, match=r"loss became nan at step 5 .*model-step00000004\.safetensors"):
        train(config, show_progress=False)

    assert sorted(p.name for p in out.glob("*.safetensors")) == [
        "model-step00000002.safetensors",
        "model-step00000004.safetensors",
    ]
    last = read_events(out / "events.jsonl")[-1]
    assert (
        last["event"] == "error"
        and last["step"] == 5
        and last["last_checkpoint"].endswith("00004.safetensors")
    )
    assert not [p for p in out.rglob(".*")]

    # Resuming with a setting the schedule depends on changed is refused; with the same config it finishes.
    monkeypatch.delenv(NAN_AT_STEP_ENV)
    with pytest.raises(ConfigError, match="cannot resume: train_batch_size was 1 and is now 2"):
        train(config.replace(train_batch_size=2), resume=True, show_progress=False)
    result = train(config, resume=True, show_progress=False)
    assert result.steps == result.optimizer_steps == 9 and len(result.losses) == 5


def test_every_loss_and_caption_option_trains(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.loop import train

    make_images(tmp_path / "data" / "2_sks", [SQUARE, WIDE], caption=", ".join(f"tag{i}" for i in range(70)))
    make_images(tmp_path / "reg" / "1_dog", [SQUARE], caption="dog")
    config = fast_config(
        tiny_model,
        tmp_path / "data",
        tmp_path / "out",
        reg_data_dir=str(tmp_path / "reg"),
        v_parameterization=True,
        min_snr_gamma=5.0,
        noise_offset=0.1,
        max_token_length=150,
        clip_skip=2,
        keep_tokens=2,
        caption_dropout_rate=0.5,
        lr_scheduler="cosine",
        lr_warmup_steps=2,
        cache_latents=False,
        learning_rate_te=5e-5,
        gradient_checkpointing=True,
        save_model_as="diffusers",
        sample_prompts=["sks"],
        sample_steps=2,
        sample_sampler="euler_a",
    )
    result = train(config, show_progress=False)
    assert result.steps == result.optimizer_steps == 8
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert (tmp_path / "out" / "model" / "unet").is_dir() and result.samples[0].exists()


def test_cli_data_error_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from curator.settings.config import write_config
    from trainer.commands.train import train as train_command

    (tmp_path / "empty").mkdir()
    write_config(fast_config(tiny_model, tmp_path / "empty", tmp_path / "out"), tmp_path / "t.toml")
    result = CliRunner().invoke(train_command, [str(tmp_path / "t.toml"), "--no-progress"])
    assert result.exit_code == 1
    lines = result.output.splitlines()  # the start-up lines, then the error in one line
    assert lines[-1].startswith("Error: no training images found in") and "Traceback" not in result.output
