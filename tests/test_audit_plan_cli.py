"""`dreamcurate plan` through the command line with every arithmetic option, against hand-computed Kohya numbers.

Kohya sd-scripts: each image is added ``repeats`` times to its bucket; regularization images are repeated in order
until they match the training images; batches = sum over buckets of ceil(count / batch); optimizer steps per epoch =
ceil(batches / GPUs / gradient accumulation); the text encoder stops at round(sensitivity x total steps).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from curator.cli import cli


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    train = tmp_path / "train" / "3_sks"
    train.mkdir(parents=True)
    for i in range(4):  # 640x448 -> bucket 576x448 at 512
        Image.new("RGB", (640, 448), (i, 10, 10)).save(train / f"l{i}.png")
    Image.new("RGB", (448, 640), (9, 9, 9)).save(train / "p.png")  # -> 448x576
    reg = tmp_path / "reg" / "1_dog"
    reg.mkdir(parents=True)
    for i in range(5):
        Image.new("RGB", (512, 512), (i, 0, 99)).save(reg / f"r{i}.png")
    return tmp_path / "train", tmp_path / "reg"


def _plan(*args: str) -> dict:
    # --raw: the arithmetic of every image (these solid-colour images are duplicates to the scan's curation)
    result = CliRunner().invoke(cli, ["plan", "--raw", *args, "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _hashes(*roots: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for r in roots
        for p in sorted(r.rglob("*"))
        if p.is_file()
    }


def test_reg_batch_accumulation_and_gpus_match_kohya(tmp_path: Path) -> None:
    train, reg = _dataset(tmp_path)
    before = _hashes(train, reg)
    data = _plan(
        str(train), "--reg", str(reg), "--resolution", "512", "--bucket-max", "1024", "--batch", "2",
        "--grad-accum", "2", "--gpus", "2", "--epochs", "5", "--save-every", "2", "--te-sensitivity", "0.4",
    )  # fmt: skip
    # train: 4 x 3 = 12 in 576x448, 1 x 3 = 3 in 448x576; reg: 15 to match, 5 images x 3, in 512x512
    assert [(b["width"], b["height"], b["count"]) for b in data["buckets"]] == [
        (448, 576, 3),
        (512, 512, 15),
        (576, 448, 12),
    ]
    assert data["batches_per_epoch"] == 2 + 8 + 6
    assert data["steps_per_epoch"] == 4  # ceil(16 / (2 GPUs x 2 accumulation))
    assert data["total_steps"] == 20
    assert data["stop_text_encoder_training"] == 8  # round(0.4 x 20)
    assert data["seed_formula_stop_step"] == 10  # 0.4 x 5 training images x 5 epochs
    assert data["te_explanation"]
    assert _hashes(train, reg) == before  # planning reads, never writes


def test_one_gpu_and_a_step_budget(tmp_path: Path) -> None:
    train, reg = _dataset(tmp_path)
    data = _plan(str(train), "--reg", str(reg), "--batch", "2", "--grad-accum", "2", "--epochs", "5")
    assert data["steps_per_epoch"] == 8 and data["total_steps"] == 40  # ceil(16 / 2) x 5
    data = _plan(str(train), "--reg", str(reg), "--batch", "2", "--steps", "10", "--te-sensitivity", "0.25")
    assert data["steps_per_epoch"] == 16 and data["total_steps"] == 10 and data["epochs"] == 1
    assert data["stop_text_encoder_training"] == 3  # round half up of 2.5
    data = _plan(str(train), "--te-stop", "7", "--epochs", "3")
    assert data["stop_text_encoder_training"] == 7 and data["seed_formula_stop_step"] is None
    assert _plan(str(train), "--no-te", "--epochs", "3")["stop_text_encoder_training"] == 0
    # without buckets every image (training 15, reg 15) shares one 512x512 bucket: ceil(30 / 4) = 8
    flat = _plan(str(train), "--reg", str(reg), "--no-buckets", "--batch", "4", "--epochs", "1")
    assert [(b["width"], b["height"], b["count"]) for b in flat["buckets"]] == [(512, 512, 30)]
    assert flat["steps_per_epoch"] == 8


def test_no_upscale_buckets_and_bucket_range(tmp_path: Path) -> None:
    root = tmp_path / "train" / "1_sks"
    root.mkdir(parents=True)
    Image.new("RGB", (300, 200)).save(root / "small.png")
    Image.new("RGB", (1000, 500)).save(root / "wide.png")
    plain = _plan(str(tmp_path / "train"), "--bucket-max", "1024")
    assert sorted((b["width"], b["height"]) for b in plain["buckets"]) == [(640, 384), (704, 320)]
    kept = _plan(str(tmp_path / "train"), "--no-upscale", "--bucket-max", "1024")
    # Kohya's bucket_no_upscale: a small image keeps its size floored to the 64 grid; a large one shrinks to the
    # area (724x362), rounded on the side whose aspect error is smaller (320 high -> 640 wide, exactly 2:1)
    assert sorted((b["width"], b["height"]) for b in kept["buckets"]) == [(256, 192), (640, 320)]
    narrow = _plan(str(tmp_path / "train"), "--bucket-min", "320", "--bucket-max", "640")
    assert all(320 <= b["width"] <= 640 and 320 <= b["height"] <= 640 for b in narrow["buckets"])


def test_vram_warnings_follow_the_seed_advice(tmp_path: Path) -> None:
    train, _ = _dataset(tmp_path)
    low = _plan(str(train), "--vram", "8")
    assert any("12 GB" in w for w in low["vram"]["warnings"]), low["vram"]
    high = _plan(str(train), "--vram", "12", "--resolution", "1024")
    assert any("768" in w for w in high["vram"]["warnings"]), high["vram"]


def test_equal_stop_steps_by_coincidence_are_not_explained_as_the_tutorials_case(tmp_path: Path) -> None:
    folder = tmp_path / "train" / "2_sks"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (512, 512), (i, 0, 0)).save(folder / f"{i}.png")
    # 4 images x 2 repeats / batch 2 = 4 steps an epoch: the same number as the tutorial's one step per image
    data = _plan(str(tmp_path / "train"), "--batch", "2", "--epochs", "10", "--te-sensitivity", "0.5")
    assert data["stop_text_encoder_training"] == data["seed_formula_stop_step"] == 20
    assert "coincidence" in data["te_explanation"] and "repeats 1" not in data["te_explanation"]
    plain = tmp_path / "plain" / "1_sks"
    plain.mkdir(parents=True)
    Image.new("RGB", (512, 512)).save(plain / "a.png")
    same = _plan(str(tmp_path / "plain"), "--epochs", "10", "--te-sensitivity", "0.5")
    assert same["stop_text_encoder_training"] == same["seed_formula_stop_step"] == 5
    assert "repeats 1, batch 1" in same["te_explanation"]
