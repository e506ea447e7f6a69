"""The plan a person reads: build_plan arithmetic, estimates, the plan command and its JSON, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.dataset.discover import Concept, Dataset, Item
from curator.images.sizes import header_size
from curator.plan import estimates
from curator.plan.build import PlanOptions, build_plan
from curator.settings.config import TrainConfig


def _dataset(concepts: list[tuple[str, int, list[tuple[int, int]], bool]]) -> tuple[Dataset, dict]:
    root = Path("/nonexistent/train")
    out, sizes = [], {}
    for name, repeats, dims, is_reg in concepts:
        prefix = "reg/" if is_reg else ""
        concept = Concept(name, repeats, root / f"{repeats}_{name}", is_reg)
        for i, size in enumerate(dims):
            rel = f"{prefix}{repeats}_{name}/{i:04d}.png"
            concept.items.append(Item(root / rel, rel, name, repeats, None, is_reg))
            sizes[rel] = size
        out.append(concept)
    return Dataset(root, out), sizes


def test_seed_tutorial_example() -> None:
    ds, sizes = _dataset([("style", 1, [(512, 512)] * 308, False)])
    plan = build_plan(ds, sizes, PlanOptions(TrainConfig(text_encoder_sensitivity=0.4, max_train_epochs=200)))
    assert plan.steps_per_epoch == 308 and plan.total_steps == 61600
    assert plan.seed_formula_stop_step == 24640 == plan.stop_text_encoder_training
    assert "Both give 24640" in plan.te_explanation


def test_hand_computed_plan_with_repeats_reg_batch_accum_gpus() -> None:
    # training: 5 squares + 3 wide (2:1 at 512 -> 704x320), repeats 3 -> 15 + 9 = 24 per epoch
    # reg: 4 squares, matched to 24 -> 24 more squares (first pass 4, then +1 each in turn)
    ds, sizes = _dataset(
        [("sks", 3, [(512, 512)] * 5 + [(1000, 500)] * 3, False), ("woman", 1, [(640, 640)] * 4, True)]
    )
    settings = TrainConfig(train_batch_size=4, gradient_accumulation_steps=2, max_train_epochs=10)
    opts = PlanOptions(settings, num_processes=2)
    plan = build_plan(ds, sizes, opts)
    assert {(b["width"], b["height"]): b["count"] for b in plan.buckets} == {(512, 512): 39, (704, 320): 9}
    # batches: ceil(39/4) + ceil(9/4) = 10 + 3 = 13; steps: ceil(13 / (2 * 2)) = 4
    assert plan.batches_per_epoch == 13 and plan.steps_per_epoch == 4 and plan.total_steps == 40
    assert plan.stop_text_encoder_training is None
    reg = next(c for c in plan.concepts if c["is_reg"])
    assert reg["per_epoch"] == 24
    settings = TrainConfig(train_batch_size=4, text_encoder_sensitivity=0.5, max_train_epochs=10)
    plan = build_plan(ds, sizes, PlanOptions(settings))
    # unsharded: 13 steps x 10 epochs = 130, stop 65; tutorial: 0.5 x 8 x 10 = 40
    assert (plan.total_steps, plan.stop_text_encoder_training, plan.seed_formula_stop_step) == (130, 65, 40)
    assert "repeats turn 8 images into 24" in plan.te_explanation
    assert "regularization images add 24" in plan.te_explanation


def test_steps_mode_crops_and_checkpoints() -> None:
    ds, sizes = _dataset([("sks", 2, [(512, 512), (600, 400), (3000, 1000)], False)])
    plan = build_plan(
        ds, sizes, PlanOptions(TrainConfig(max_train_epochs=0, max_train_steps=500, save_every_n_epochs=40))
    )
    assert plan.steps_per_epoch == 6 and plan.total_steps == 500 and plan.epochs == 84
    assert plan.checkpoints["count"] == 3  # epochs 40, 80, then the final model
    crops = {i["path"].split("/")[-1]: i["crop_fraction"] for i in plan.images}
    assert crops["0000.png"] == 0 and crops["0002.png"] > 0.05  # 3:1 into the widest bucket loses a strip


def test_vram_fit_reproduces_published_points() -> None:
    gc_8bit = estimates.VramInputs(gradient_checkpointing=True, use_8bit_adam=True, train_text_encoder=False)
    assert abs(estimates.estimate_vram(gc_8bit).total_gb - 9.92) < 0.01
    b2 = estimates.VramInputs(batch_size=2, use_8bit_adam=True, train_text_encoder=False)
    assert abs(estimates.estimate_vram(b2).total_gb - 13.67) < 0.01
    adamw = estimates.VramInputs(gradient_checkpointing=True, train_text_encoder=False)
    assert abs(estimates.estimate_vram(adamw).total_gb - 15.79) < 0.01
    low = estimates.estimate_vram(gc_8bit, available_gb=8)
    assert any("not advised below 12" in w for w in low.warnings)
    big = estimates.estimate_vram(estimates.VramInputs(resolution=1024, gradient_checkpointing=True), 12)
    assert any("at or below 768" in w for w in big.warnings)


def test_time_and_size_advice() -> None:
    t = estimates.estimate_time(
        930, estimates.VramInputs(gradient_checkpointing=True), gpu_class="t4", te_steps=0
    )
    assert abs(t.seconds - 1000) < 1  # 930 steps at the published 0.93 it/s
    assert estimates.estimate_time(100, estimates.VramInputs(), measured_its=2.0).seconds == 50
    assert estimates.size_advice("a", 40).verdict == "too_few"
    assert estimates.size_advice("a", 150).verdict == "ok"
    many = estimates.size_advice("a", 900)
    assert many.verdict == "many" and "diverse subset" in many.advice
    assert estimates.size_advice("me", 30, "subject").verdict == "ok"
    assert estimates.size_advice("me", 120, "subject").verdict == "many"


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "4_sks"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (640, 448), (i, 0, 0)).save(folder / f"{i}.png")
    rotated = Image.new("RGB", (640, 448))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the picture is portrait
    rotated.save(folder / "r.jpg", exif=exif)
    return tmp_path / "train"


def test_header_size_applies_exif(tmp_path: Path) -> None:
    root = _images(tmp_path)
    assert header_size(root / "4_sks" / "0.png") == (640, 448)
    assert header_size(root / "4_sks" / "r.jpg") == (448, 640)
    (root / "bad.png").write_bytes(b"nope")
    assert header_size(root / "bad.png") is None


def test_plan_command_json(tmp_path: Path) -> None:
    root = _images(tmp_path)
    out = CliRunner().invoke(
        cli,
        [
            "plan",
            str(root),
            "--raw",
            "--batch",
            "2",
            "--epochs",
            "10",
            "--te-sensitivity",
            "0.4",
            "--json",
            "-",
        ],  # fmt: skip
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    for key in (
        "total_steps",
        "steps_per_epoch",
        "stop_text_encoder_training",
        "seed_formula_stop_step",
        "vram_gb",
        "size_advice",
    ):
        assert key in data
    # 3 landscape 640x448 (-> 576x448) and one portrait 448x640 (-> 448x576), repeats 4: ceil(12/2) + ceil(4/2) = 8
    assert [(b["width"], b["height"], b["count"]) for b in data["buckets"]] == [(448, 576, 4), (576, 448, 12)]
    assert (
        data["steps_per_epoch"] == 8
        and data["total_steps"] == 80
        and data["stop_text_encoder_training"] == 32
    )
    assert data["seed_formula_stop_step"] == 16
    assert data["sizes_from"]["header"] == 4


def test_plan_usage_errors(tmp_path: Path) -> None:
    root = _images(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["plan", str(root), "--epochs", "2", "--steps", "5"]).exit_code == 2
    assert runner.invoke(cli, ["plan", str(root), "--te-stop", "2", "--te-sensitivity", "0.1"]).exit_code == 2
    assert runner.invoke(cli, ["plan", str(tmp_path / "missing")]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["plan", str(empty)])
    assert result.exit_code == 1 and "No training images" in result.output


def test_tags_and_plan_do_not_import_torch(tmp_path: Path) -> None:
    root = _images(tmp_path)
    for name in ("0", "1", "2", "r"):
        (root / "4_sks" / f"{name}.txt").write_text("sks, smile")
    code = (
        "import sys, json\nfrom curator.cli import main\n"
        f"main(['plan', {str(root)!r}, '--json', {str(tmp_path / 'p.json')!r}])\n"
        f"main(['tags', {str(root)!r}, '--json', {str(tmp_path / 't.json')!r}])\n"
        "heavy = ('torch', 'transformers', 'diffusers', 'open_clip', 'textual', 'trainer', 'tui')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
    assert json.loads((tmp_path / "p.json").read_text())["total_steps"] > 0
    assert json.loads((tmp_path / "t.json").read_text())["concepts"][0]["name"] == "sks"
