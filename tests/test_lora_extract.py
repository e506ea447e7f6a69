"""LoRA extraction from a DreamBooth-like result of the tiny model: full rank reproduces the tuned outputs, lower
ranks report a larger error that falls as the rank grows, a trained-then-frozen text encoder is still extracted,
and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def perturbed(family: str = "sd1", scale: float = 0.05) -> object:
    """The tiny model with every LoRA target layer's weight moved by ``scale`` of its spread (deterministic)."""
    from trainer.lora.targets import find_targets
    from trainer.models.tiny import build_random_model, tiny_configs

    tuned = build_random_model(tiny_configs(family))
    generator = torch.Generator().manual_seed(7)
    roots = {"unet": tuned.unet, "te": tuned.text_encoder}
    with torch.no_grad():
        for target in find_targets(tuned.unet, tuned.text_encoder, conv=True):
            weight = roots[target.part].get_submodule(target.path).weight
            weight.add_(scale * weight.std() * torch.randn(weight.shape, generator=generator))
    return tuned


def errors_through_diffusers(result: object, tuned: object, tmp_path: Path) -> dict[str, float]:
    from trainer.lora.check import apply_lora, base_pipeline, compare_outputs, lora_model
    from trainer.lora.files import write_lora
    from trainer.models.tiny import build_random_model, tiny_configs

    path = write_lora(tmp_path / "x.safetensors", result.tensors, result.metadata())  # type: ignore[attr-defined]
    base = build_random_model(tiny_configs("sd1"))
    pipe = base_pipeline(base)
    assert apply_lora(pipe, path).unmatched == []
    return compare_outputs(lora_model(base, pipe), tuned, build_random_model(tiny_configs("sd1")))


@pytest.mark.slow
def test_full_rank_reproduces_and_lower_ranks_report_a_falling_error(tmp_path: Path) -> None:
    from trainer.lora.extract import extract
    from trainer.models.tiny import build_random_model, tiny_configs

    base, tuned = build_random_model(tiny_configs("sd1")), perturbed()
    full = extract(base, tuned, dim=64, conv_dim=64, clamp_quantile=1.0)
    assert min(row.kept for row in full.layers) > 0.9999
    exact = errors_through_diffusers(full, tuned, tmp_path)
    assert exact["unet"] < 1e-3 and exact["text_encoder"] < 1e-3, exact

    low = extract(base, tuned, dim=4, conv_dim=4)  # Kohya's default clamping
    high = extract(base, tuned, dim=16, conv_dim=16)
    assert low.summary("unet")["mean_kept"] < high.summary("unet")["mean_kept"] < 1.0
    low_err, high_err = (
        errors_through_diffusers(low, tuned, tmp_path),
        errors_through_diffusers(high, tuned, tmp_path),
    )
    for part in ("unet", "text_encoder"):
        assert exact[part] < high_err[part] < low_err[part], (part, low_err, high_err)


def test_dynamic_rank_keeps_the_asked_share_of_each_layer() -> None:
    from trainer.lora.extract import extract
    from trainer.models.tiny import build_random_model, tiny_configs

    base, tuned = build_random_model(tiny_configs("sd1")), perturbed()
    result = extract(base, tuned, dim=64, conv_dim=64, clamp_quantile=1.0, fro=0.9)
    assert len({row.rank for row in result.layers}) > 1  # per-layer ranks
    floor = 1 - (1 - 0.9**2) ** 0.5  # ||residual|| <= sqrt(1 - f^2) ||diff||
    assert all(row.kept >= floor - 1e-5 for row in result.layers)
    assert {float(v) for k, v in result.tensors.items() if k.endswith(".alpha")} == {64.0}


def test_same_model_and_other_family_are_refused() -> None:
    from trainer.lora.extract import extract
    from trainer.models.errors import ModelError
    from trainer.models.tiny import build_random_model, tiny_configs

    base = build_random_model(tiny_configs("sd1"))
    with pytest.raises(ModelError, match="same model"):
        extract(base, build_random_model(tiny_configs("sd1")), dim=4)
    with pytest.raises(ModelError, match="different families"):
        extract(base, build_random_model(tiny_configs("sd2")), dim=4)


@pytest.mark.slow
def test_dreambooth_then_extract_then_check_on_the_command_line(tmp_path: Path) -> None:
    """A real DreamBooth run whose text encoder trains 2 steps then freezes: its small change (under Kohya's
    min_diff) is still extracted, and `lora check --tuned` proves the file."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from trainer_testkit import SQUARE, fast_config, make_images

    from curator.cli import cli
    from curator.settings.config import write_config
    from trainer.models.io import load_model
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 2)
    config = fast_config(
        model,
        tmp_path / "data",
        tmp_path / "db",
        resolution=64,
        max_train_epochs=3,
        stop_text_encoder_training=2,
        learning_rate=1e-4,
    )
    write_config(config, tmp_path / "train.toml")
    runner = CliRunner()
    trained = runner.invoke(
        cli, ["train", str(tmp_path / "train.toml"), "--no-progress", "--extract-lora", "4"]
    )
    assert trained.exit_code == 0, trained.output
    tuned = tmp_path / "db" / "model.safetensors"
    assert "text encoder" in trained.output and (tmp_path / "db" / "model-lora.safetensors").is_file()
    te_base = load_model(model).text_encoder.state_dict()
    te_tuned = load_model(tuned).text_encoder.state_dict()
    change = max(float((te_tuned[k] - te_base[k]).abs().max()) for k in te_base)
    assert 0 < change < 0.01  # Kohya's extractor would call this text encoder unchanged and drop it

    out = tmp_path / "lora.safetensors"
    args = ["lora", "extract", "--base", str(model), "--tuned", str(tuned), str(out), "--dim", "8", "--json"]
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["text_encoder"]["layers"] > 0 and report["text_encoder_relative_change"] > 0
    assert report["unet"]["layers"] > 0 and all(0 <= row["kept"] <= 1 for row in report["layers"])

    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "already exists; use --force" in again.output
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0
    same = runner.invoke(
        cli, ["lora", "extract", "--base", str(model), "--tuned", str(model), str(tmp_path / "s.safetensors")]
    )
    assert same.exit_code == 1 and "same file" in same.output and "Traceback" not in same.output

    checked = runner.invoke(
        cli,
        [
            "lora",
            "check",
            str(model),
            str(out),
            "--tuned",
            str(tuned),
            "--steps",
            "2",
            "--output-dir",
            str(tmp_path / "c"),
            "--json",
        ],
    )
    assert checked.exit_code == 0, checked.output
    result = json.loads(checked.output[checked.output.index("{") :])
    assert (
        result["keys"]["unmatched"] == []
        and result["keys"]["matched"] == report["unet"]["layers"] + report["text_encoder"]["layers"]
    )
    assert 0 <= result["relative_error"]["unet_of_change"] < 1.0
    assert Path(result["sample"]).is_file() and Path(result["sample"]).parent == tmp_path / "c" / "samples"
