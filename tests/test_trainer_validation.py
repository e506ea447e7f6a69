"""validation_split: one held-out choice (curator.plan.validation) that the step counts exclude; the validation loss
at fixed timesteps and noise; OUTPUT_DIR/training.html."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_testkit import SQUARE, WIDE, fast_config, make_images

from curator.dataset.discover import Item
from curator.plan import steps as plan
from curator.plan.validation import held_out_items

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _items(folder: str, count: int, reg: bool = False) -> list[Item]:
    return [
        Item(Path(f"/{folder}/{i}.png"), f"{folder}/{i:02d}.png", folder, 1, None, reg) for i in range(count)
    ]


def test_held_out_images_are_a_seeded_fraction_of_each_concept() -> None:
    items = _items("10_sks", 20) + _items("1_style", 5) + _items("reg/1_dog", 10, reg=True)
    held = held_out_items(items, 0.2, seed=42)
    assert (
        sum(r.startswith("10_sks/") for r in held) == 4 and sum(r.startswith("1_style/") for r in held) == 1
    )
    assert not any(r.startswith("reg/") for r in held)
    assert held == held_out_items(list(reversed(items)), 0.2, seed=42)  # not the listing order
    assert held != held_out_items(items, 0.2, seed=7)
    assert held_out_items(_items("1_one", 1), 0.5, 1) == frozenset()  # a concept keeps one training image
    assert held_out_items(items, 0.0, 42) == frozenset()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_steps_exclude_the_held_out_images(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.data import bucket_settings, build_training_data

    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 6 + [WIDE] * 4)
    config = fast_config(tiny_model, tmp_path / "data", tmp_path / "out", validation_split=0.2)
    data = build_training_data(config)
    held = held_out_items(data.dataset.items, 0.2, config.seed)
    assert len(data.validation) == 2 and {s.item.rel for s in data.validation} == held
    assert not held & set(data.samples)
    everything = build_training_data(config.replace(validation_split=0.0)).entries
    counts = plan.bucket_counts([e for e in everything if e.key not in held], bucket_settings(config))
    assert data.schedule.steps_per_epoch == plan.steps_per_epoch(counts, 1) == 8


@pytest.mark.slow
def test_validation_loss_is_fixed_noise_and_fixed_timesteps(tiny_model: Path, tmp_path: Path) -> None:
    from trainer.events import read_events
    from trainer.loop import train

    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 5)
    runs = {}
    for name, lr in (("a", 1e-4), ("b", 3e-4)):
        config = fast_config(
            tiny_model,
            tmp_path / "data",
            tmp_path / name,
            max_train_epochs=2,
            validation_split=0.2,
            validate_every_n_steps=3,
            save_every_n_epochs=1,
            learning_rate=lr,
            flip_aug=True,
            sample_prompts=["sks"],
            sample_steps=1,
        )
        train(config, show_progress=False)
        runs[name] = [e for e in read_events(tmp_path / name / "events.jsonl") if e["event"] == "validation"]
    a, b = runs["a"], runs["b"]
    # before training (step 0), every 3 steps, at each save point (epochs 1 and 2 end at steps 4 and 8)
    assert [e["step"] for e in a] == [0, 3, 4, 6, 8] and all(e["images"] == 1 for e in a)
    assert a[0]["loss"] == b[0]["loss"]  # same base model, same noise and timesteps: the same number
    assert a[-1]["loss"] != b[-1]["loss"]  # different training, different weights
    html = (tmp_path / "a" / "training.html").read_text()
    assert html.count("<svg") == 2 and "validation_split" in html and "data:image/jpeg" in html
    assert "finished" in html
