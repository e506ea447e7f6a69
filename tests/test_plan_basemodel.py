"""The plan with a known base model: real parameter counts from the file's header drive memory and disk sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.dataset.discover import Concept, Dataset, Item
from curator.plan.build import PlanOptions, build_plan
from curator.plan.modelfile import facts_for_plan, read_model_facts
from curator.settings.config import TrainConfig

# SD 1.5's real parameter counts (v1-5-pruned-emaonly): UNet, VAE, text encoder
SD15 = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}


def _dataset() -> tuple[Dataset, dict]:
    root = Path("/nonexistent/train")
    concept = Concept("style", 10, root / "10_style", False)
    sizes = {}
    for i in range(8):
        rel = f"10_style/{i:04d}.png"
        concept.items.append(Item(root / rel, rel, "style", 10, None, False))
        sizes[rel] = (512, 512)
    return Dataset(root, [concept]), sizes


def _fake_sd15_header(path: Path) -> Path:
    """A safetensors file that is only a header: SD 1.5's key layout in a few tensors with SD 1.5's counts."""
    first_conv = [320, 4, 3, 3]
    token = [49408, 768]
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": first_conv,
        "model.diffusion_model.rest": [SD15["unet"] - 320 * 4 * 9],
        "first_stage_model.rest": [SD15["vae"]],
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": token,
        "cond_stage_model.transformer.text_model.rest": [SD15["text_encoder"] - 49408 * 768],
    }
    header = {k: {"dtype": "F32", "shape": v, "data_offsets": [0, 0]} for k, v in tensors.items()}
    header["cond_stage_model.transformer.text_model.embeddings.position_ids"] = {
        "dtype": "I64",
        "shape": [1, 77],
        "data_offsets": [0, 0],
    }
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    return path


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model saved in float and fp16 (what a training run would write)."""
    from trainer.models.io import save_single_file
    from trainer.models.tiny import build_random_model, tiny_configs, write_tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    files = {"float": write_tiny_model(folder / "tiny.safetensors")}
    model = build_random_model(tiny_configs("sd1"))
    files["fp16"] = save_single_file(model, folder / "tiny-fp16.safetensors", "fp16", {})
    return files


@pytest.mark.parametrize("precision", ["float", "fp16"])
def test_tiny_model_checkpoint_size_matches_the_saved_file(
    tiny_files: dict[str, Path], precision: str
) -> None:
    facts = read_model_facts(tiny_files["float"])
    assert facts.family == "sd1" and facts.unet_width == 32
    ds, sizes = _dataset()
    plan = build_plan(ds, sizes, PlanOptions(TrainConfig(save_precision=precision), base_model=facts))
    real = tiny_files[precision].stat().st_size
    assert abs(plan.checkpoints["each_bytes"] - real) / real < 0.10


def test_tiny_model_memory_is_far_below_the_sd15_default(tiny_files: dict[str, Path]) -> None:
    ds, sizes = _dataset()
    default = build_plan(ds, sizes, PlanOptions())
    tiny = build_plan(ds, sizes, PlanOptions(base_model=read_model_facts(tiny_files["float"])))
    assert default.vram_gb > 15
    assert tiny.vram_gb < 2 and tiny.vram["parts"]["text_encoder"] < 0.1
    assert tiny.checkpoints["total_gb"] <= 0.2 < 10 < default.checkpoints["total_gb"]


def test_sd15_sized_header_gives_the_default_numbers(tmp_path: Path) -> None:
    facts = read_model_facts(_fake_sd15_header(tmp_path / "sd15.safetensors"))
    assert facts.family == "sd1" and facts.parameters == SD15 and facts.unet_width == 320
    ds, sizes = _dataset()
    for extra in (
        {},
        {"save_precision": "fp16", "optimizer_type": "AdamW8bit", "gradient_checkpointing": True},
    ):
        settings = TrainConfig(**extra)  # type: ignore[arg-type]
        default = build_plan(ds, sizes, PlanOptions(settings))
        known = build_plan(ds, sizes, PlanOptions(settings, base_model=facts))
        assert known.vram["total_gb"] == pytest.approx(default.vram["total_gb"], abs=0.02)
        assert known.checkpoints["each_gb"] == pytest.approx(default.checkpoints["each_gb"], abs=0.01)


@pytest.mark.parametrize("content", [b"\x80\x02garbage pickle", b"not a model at all"])
@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_unreadable_base_falls_back_with_a_note(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    facts, note = facts_for_plan(path)
    assert facts is None and note and "assume SD 1.5" in note
    ds, sizes = _dataset()
    plan = build_plan(ds, sizes, PlanOptions(base_model=facts, base_model_note=note))
    assert plan.vram == build_plan(ds, sizes, PlanOptions()).vram and note in plan.notes


def test_plan_command_reads_base(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "10_style"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (64, 64), (i * 40, 90, 120)).save(folder / f"{i}.png")
    base = _fake_sd15_header(tmp_path / "sd15.safetensors")
    runner = CliRunner()
    result = runner.invoke(cli, ["plan", str(tmp_path / "data"), "--base", str(base), "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    # the plan's JSON no longer lists the base model's facts: its checkpoint size is made of them
    facts = read_model_facts(base)
    assert data["checkpoints"]["each_bytes"] == sum(SD15.values()) * 4 + facts.header_bytes
    assert not any("assume SD 1.5" in n for n in data["notes"])
    bad = tmp_path / "old.ckpt"
    bad.write_bytes(b"PK\x03\x04truncated")
    result = runner.invoke(cli, ["plan", str(tmp_path / "data"), "--base", str(bad), "--json", "-"])
    assert result.exit_code == 0 and result.exception is None
    data = json.loads(result.output[result.output.index("{") :])
    assert any("assume SD 1.5" in n for n in data["notes"])


def test_tiny_checkpoints_read_in_megabytes(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    from curator.report.html import _checkpoint_card

    folder = tmp_path / "data" / "10_style"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 90, 120)).save(folder / "a.png")
    args = ["plan", str(tmp_path / "data"), "--epochs", "1", "--base", str(tiny_files["float"])]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Checkpoints: 1 x 22 MB = 22 MB of disk" in " ".join(result.output.split())
    ds, sizes = _dataset()
    plan = build_plan(ds, sizes, PlanOptions(base_model=read_model_facts(tiny_files["float"])))
    assert _checkpoint_card(plan.checkpoints) == ("110 MB", "of checkpoints (5 saves)")
