"""SDXL in the plan and the export: the family's defaults come from the base model, the memory estimate reproduces
its published anchors and warns against --vram, the scan judges sizes at 1024 px, and the export writes a config
Kohya's sdxl_train.py reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib
from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.plan import estimates
from curator.settings.config import TrainConfig


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl.safetensors", "sdxl")


def _dataset(root: Path) -> Path:
    folder = root / "data" / "3_sks"
    folder.mkdir(parents=True)
    for index, (w, h) in enumerate([(1200, 900), (800, 1400), (700, 700), (1536, 1024)]):
        rng = np.random.default_rng(index)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text("sks, photo")
    return root / "data"


def _recipe(**changes: object) -> estimates.VramInputs:
    base: dict = dict(
        resolution=1024,
        model="sdxl",
        gradient_checkpointing=True,
        train_text_encoder=False,
        optimizer_type="Adafactor",
        fused_backward_pass=True,
        full_bf16=True,
        cache_text_encoder_outputs=True,
    )
    base.update(changes)
    return estimates.VramInputs(**base)


def test_sdxl_memory_estimate_reproduces_its_anchors_and_orders_the_recipes() -> None:
    bf16 = estimates.estimate_vram(_recipe())
    fp32 = estimates.estimate_vram(_recipe(full_bf16=False, mixed_precision="no"))
    assert bf16.total_gb == pytest.approx(10.0, abs=0.1)  # sd-scripts PR 1259
    assert fp32.total_gb == pytest.approx(16.4, abs=0.1)
    unfused = estimates.estimate_vram(_recipe(fused_backward_pass=False)).total_gb
    adamw8 = estimates.estimate_vram(_recipe(fused_backward_pass=False, optimizer_type="AdamW8bit")).total_gb
    both = estimates.estimate_vram(_recipe(train_text_encoder=True)).total_gb
    live_te = estimates.estimate_vram(_recipe(cache_text_encoder_outputs=False)).total_gb
    no_gc = estimates.estimate_vram(_recipe(gradient_checkpointing=False)).total_gb
    # frozen encoders stay float32 on the GPU (3.3 GB) unless cached; trained ones follow full_bf16
    assert bf16.total_gb < both and bf16.total_gb + 3 < live_te
    assert bf16.total_gb < unfused < adamw8 and bf16.total_gb < no_gc
    assert estimates.estimate_vram(_recipe(), available_gb=12).warnings == []
    warned = estimates.estimate_vram(_recipe(full_bf16=False), available_gb=12).warnings
    assert warned and "fused_backward_pass" in warned[0]
    speed = estimates.estimate_time(100, _recipe(train_text_encoder=True), gpu_class="rtx4090")
    assert 1 / speed.its == pytest.approx(1.2)  # OneTrainer 164


def test_family_defaults_are_one_definition() -> None:
    sdxl = TrainConfig.for_family("sdxl")
    assert (sdxl.resolution, sdxl.min_bucket_reso, sdxl.max_bucket_reso, sdxl.bucket_reso_steps) == (
        1024,
        256,
        2048,
        64,
    )
    assert TrainConfig.for_family("sd1") == TrainConfig()
    assert not sdxl.train_text_encoder and sdxl.learning_rate_te1 is None
    sdxl.validate(check_paths=False)


def _plan_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["plan", *args, "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_takes_sdxl_defaults_from_the_base(tiny_sdxl: Path, tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    plan = _plan_json(str(data), "--base", str(tiny_sdxl))
    settings = plan["options"]["settings"]
    assert settings["resolution"] == 1024 and settings["max_bucket_reso"] == 2048
    assert "text_encoders" not in plan["vram"]["parts"]  # SDXL: encoders frozen unless train_text_encoder
    assert any("PR 1259" in note for note in plan["notes"])
    buckets = {(b["width"], b["height"]) for b in plan["buckets"]}
    assert any(h > 1024 for _, h in buckets), buckets  # SDXL's portrait buckets (768 x 1344 here) exist
    given = _plan_json(str(data), "--base", str(tiny_sdxl), "--resolution", "768")
    assert given["options"]["settings"]["resolution"] == 768
    trained = _plan_json(str(data), "--base", str(tiny_sdxl), "--train-text-encoder")
    assert "text_encoders" in trained["vram"]["parts"]
    assert _plan_json(str(data))["options"]["settings"]["resolution"] == 512  # no base: SD's defaults


def test_export_with_an_sdxl_base_scans_at_1024_and_writes_kohyas_sdxl_config(
    tiny_sdxl: Path, tmp_path: Path
) -> None:
    data, out = _dataset(tmp_path), tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", str(data), str(out), "--base", str(tiny_sdxl)])
    assert result.exit_code == 0, result.output
    dataset = tomllib.loads((out / "dataset.toml").read_text())["datasets"][0]
    assert (dataset["resolution"], dataset["max_bucket_reso"]) == (1024, 2048)
    ours = tomllib.loads((out / "train.toml").read_text())
    assert ours["resolution"] == 1024
    kohya = tomllib.loads((out / "sdxl_train.toml").read_text())
    assert kohya["dataset_config"] == str(out / "dataset.toml")
    assert kohya["pretrained_model_name_or_path"] == str(tiny_sdxl)
    # Kohya would parse a top-level resolution as "W,H" text and read an unset rate as a value: neither is written
    assert "resolution" not in kohya and "learning_rate_te1" not in kohya and "train_data_dir" not in kohya
    assert kohya["train_text_encoder"] is False and kohya["cache_text_encoder_outputs"] is False
    # the scan judged sizes at 1024 px: 1536 x 1024 is the only image big enough
    items = {i["path"]: i for i in json.loads((out / "manifest.json").read_text())["items"]}
    small = sorted(p for p, i in items.items() if "too_small" in i["codes"])
    assert small == ["3_sks/0.png", "3_sks/1.png", "3_sks/2.png"]


def test_sdxl_kohya_config_carries_encoder_rates_only_when_they_train() -> None:
    from curator.export.kohya_config import sdxl_train_config

    settings = TrainConfig.for_family(
        "sdxl",
        train_text_encoder=True,
        learning_rate_te1=0.0,
        optimizer_type="Adafactor",
        mixed_precision="bf16",
        full_bf16=True,
        fused_backward_pass=True,
        max_token_length=225,
    )
    config = sdxl_train_config(Path("/x"), settings)
    assert config["learning_rate_te1"] == 0.0 and "learning_rate_te2" not in config
    assert config["full_bf16"] and config["fused_backward_pass"] and config["max_token_length"] == 225
    assert config["dataset_config"] == str(Path("/x") / "dataset.toml")
