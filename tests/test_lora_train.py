"""LoRA training on the tiny model: the plan's step count, only the adapters change (the base weights stay
byte-identical), the loss falls when over-fitting four images, and a SIGKILLed run resumes to the planned step."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from trainer_testkit import SQUARE, fast_config, make_images

from curator.dataset.discover import discover
from curator.plan import steps as plan
from curator.settings.config import write_config
from trainer.data import bucket_settings

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
LORA = {"network_module": "networks.lora", "network_dim": 4, "network_alpha": 4.0, "conv_dim": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _smooth_images(folder: Path, count: int) -> None:
    import numpy as np

    folder.mkdir(parents=True)
    grid = np.linspace(0, 1, 64, dtype=np.float32)
    for index in range(count):
        hue = np.array([index % 2, (index // 2) % 2, 0.5], dtype=np.float32)
        pixels = (np.outer(grid, grid)[..., None] * hue * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
        (folder / f"img{index}.txt").write_text(f"sks, image {index}")


def _planned_steps(config: object) -> int:
    dataset = discover(Path(config.train_data_dir))  # type: ignore[attr-defined]
    entries = []
    for item in dataset.items:
        with Image.open(item.path) as image:
            entries.append(plan.PlanEntry(item.rel, image.width, image.height, item.repeats, item.is_reg))
    counts = plan.bucket_counts(entries, bucket_settings(config))  # type: ignore[arg-type]
    per_epoch = plan.steps_per_epoch(counts, config.train_batch_size, config.gradient_accumulation_steps)  # type: ignore[attr-defined]
    return plan.total_steps(per_epoch, config.max_train_epochs or None, config.max_train_steps or None)  # type: ignore[attr-defined]


def _base_weights(state_file: Path) -> dict[str, torch.Tensor]:
    """A saved resume state's module weights without the adapters, under the plain model's keys."""
    from safetensors.torch import load_file

    return {
        k.replace(".base_layer", ""): v for k, v in load_file(str(state_file)).items() if ".lora_" not in k
    }


@pytest.mark.slow
def test_lora_trains_only_adapters_for_the_planned_steps_and_learns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.loop import train
    from trainer.lora import training
    from trainer.lora.files import read_lora
    from trainer.models.io import load_model
    from trainer.models.tiny import write_tiny_model

    # The resume state keeps the whole modules here, so the test can read back the base weights training ended with.
    monkeypatch.setattr(training, "register_state_hooks", lambda accelerator: None)
    model = write_tiny_model(tmp_path / "tiny.safetensors")
    _smooth_images(tmp_path / "data" / "1_sks", 4)
    config = fast_config(
        model,
        tmp_path / "data",
        tmp_path / "out",
        resolution=64,
        enable_bucket=False,
        train_batch_size=4,
        max_train_epochs=40,
        learning_rate=1e-2,
        save_state=True,
        shuffle_caption=False,
        sample_prompts=["sks"],
        sample_steps=2,
        **LORA,
    )
    result = train(config, show_progress=False)
    assert [p.name for p in result.samples] == ["model_00.png"]  # samples render with the adapters on

    assert result.steps == result.optimizer_steps == result.te_optimizer_steps == _planned_steps(config) == 40
    first, last = result.losses[:10], result.losses[-10:]
    assert sum(last) / len(last) < 0.7 * (sum(first) / len(first)), (first, last)

    base = load_model(model)
    state = next((tmp_path / "out" / "state").glob("step-*"))
    for saved, plain in (
        (state / "model.safetensors", base.unet),
        (state / "model_1.safetensors", base.text_encoder),
    ):
        weights, reference = _base_weights(saved), plain.state_dict()
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[k], reference[k]) for k in reference)  # byte-identical base

    tensors, meta = read_lora(result.final_path)
    ups = [v for k, v in tensors.items() if k.endswith("lora_up.weight")]
    assert all(float(v.abs().max()) > 0 for v in ups)  # every adapter trained (up starts at zero)
    assert {k.split("_")[1] for k in tensors} == {"unet", "te"}
    assert meta["ss_network_dim"] == "4" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_tag_frequency"].startswith('{"1_sks": {"sks": 4')


@pytest.mark.slow
def test_lora_sigkill_then_resume_ends_at_the_planned_step(tmp_path: Path) -> None:
    import os

    from trainer.events import read_events
    from trainer.lora.files import read_lora
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 4)
    out = tmp_path / "out"
    config = fast_config(
        model,
        tmp_path / "data",
        out,
        resolution=64,
        max_train_epochs=6,
        save_every_n_steps=3,
        save_state=True,
        **LORA,
    )
    config_path = tmp_path / "train.toml"
    write_config(config, config_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "trainer", str(config_path), "--no-progress"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, "training ended before it could be killed"
            events = read_events(out / "events.jsonl") if (out / "events.jsonl").exists() else []
            if any(e["event"] == "checkpoint" and e["step"] >= 6 for e in events):
                break
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = read_events(out / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and 6 <= starts[1]["resumed_from_step"] < 24
    assert events[-1]["event"] == "end" and events[-1]["step"] == 24 == starts[0]["total_steps"]
    tensors, meta = read_lora(out / "model.safetensors")
    assert meta["dreamcurate.step"] == "24" and tensors
    # the resume state holds the adapters only, not the frozen model
    from safetensors import safe_open

    state = out / "state" / "step-00000024"
    for name in ("model.safetensors", "model_1.safetensors"):
        with safe_open(str(state / name), framework="pt") as handle:
            keys = list(handle.keys())  # noqa: SIM118
        assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert not [p for p in out.rglob(".*")], "a temporary was left behind"


@pytest.mark.parametrize("only", ["network_train_unet_only", "network_train_text_encoder_only"])
def test_one_part_only_adapts_and_trains_that_part(only: str, tmp_path: Path) -> None:
    from trainer.loop import train
    from trainer.lora.files import read_lora
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 2)
    config = fast_config(
        model,
        tmp_path / "data",
        tmp_path / "out",
        resolution=64,
        max_train_epochs=2,
        **{**LORA, "conv_dim": 0, only: True},
    )
    result = train(config, show_progress=False)
    unet_only = only == "network_train_unet_only"
    assert (result.optimizer_steps, result.te_optimizer_steps) == ((4, 0) if unet_only else (0, 4))
    tensors, _ = read_lora(result.final_path)
    assert {k.split("_")[1] for k in tensors} == ({"unet"} if unet_only else {"te"})
