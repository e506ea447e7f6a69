"""TrainConfig: TOML round trip, defaults visible everywhere, one-line validation errors, CLI overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from curator.settings.config import ConfigError, TrainConfig, config_to_toml, read_config, write_config
from trainer.commands.train import apply_overrides, train


def test_toml_round_trip_keeps_every_field(tmp_path: Path) -> None:
    config = TrainConfig(
        pretrained_model_name_or_path='C:\\models\\base "v1".safetensors',
        sample_prompts=["sks dog, on a beach", "ünïcode ✓"],
        learning_rate=1.5e-6,
        noise_offset=0.05,
        shuffle_caption=False,
        keep_tokens_separator="|||",
    )
    path = tmp_path / "train.toml"
    write_config(config, path)
    assert read_config(path) == config
    assert not [p for p in tmp_path.iterdir() if p.name != "train.toml"]  # atomic: no temporary left


def test_written_toml_shows_every_default_with_its_help() -> None:
    text = config_to_toml(TrainConfig())
    data = tomllib.loads(text)
    unset = {"learning_rate_te", "learning_rate_te1", "learning_rate_te2", "stop_text_encoder_training"}
    # Kohya's unset: written commented out
    assert list(data) == [f.name for f in dataclasses.fields(TrainConfig) if f.name not in unset]
    assert "\n# learning_rate_te =\n" in text and "\n# stop_text_encoder_training =\n" in text
    assert data["max_bucket_reso"] == 1280 and data["max_train_epochs"] == 200
    assert data["save_every_n_epochs"] == 40 and data["mixed_precision"] == "fp16"
    assert (
        data["save_precision"] == "float" and data["caption_extension"] == ".txt" and data["shuffle_caption"]
    )
    for spec in dataclasses.fields(TrainConfig):
        prefix = "# " if spec.name in unset else ""
        assert f"# {spec.metadata['help']}\n{prefix}{spec.name} =" in text


def test_kohya_configs_load_and_unimplemented_settings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "kohya.toml"
    path.write_text(
        "[model_arguments]\nv_parameterization = true\n"
        "[training_arguments]\ntrain_batch_size = 4\nxformers = true\nflip_aug = true\ncolor_aug = false\n"
        "lr_scheduler_args = []\nresolution = '512,512'\n"
    )
    config = read_config(path)  # xformers changes no number; color_aug and lr_scheduler_args are off
    assert config.v_parameterization and config.train_batch_size == 4 and config.flip_aug
    assert config.resolution == 512
    path.write_text("color_aug = true\nip_noise_gamma = 0.1\n")
    with pytest.raises(
        ConfigError, match="Kohya setting color_aug = true is not implemented .*--skip-unsupported"
    ):
        read_config(path)
    ignored: list[str] = []
    read_config(path, ignored, skip_unsupported=True)
    assert ignored == ["color_aug", "ip_noise_gamma"]
    path.write_text("xformer = true\n")  # a typo is still an error
    with pytest.raises(ConfigError, match="unknown setting 'xformer'"):
        read_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learnig_rate = 1e-6", "unknown setting 'learnig_rate' (did you mean 'learning_rate'?)"),
        ("train_batch_size = 1.5", "train_batch_size must be a whole number, got 1.5"),
        ("shuffle_caption = 1", "shuffle_caption must be true or false"),
        ("mixed_precision = 'fp8'", "mixed_precision = 'fp8' is not one of: no, fp16, bf16"),
        ("max_token_length = 100", "max_token_length = 100 is not one of: 75, 150, 225"),
        ("train_batch_size = 0", "train_batch_size must be more than 0"),
        ("caption_dropout_rate = 1.5", "caption_dropout_rate is a probability"),
        ("max_train_epochs = 0", "set max_train_epochs or max_train_steps"),
        ("resolution = 500", "resolution must be a multiple of 8"),
        ("min_bucket_reso = 1024\nresolution = 512", "min_bucket_reso <= resolution <= max_bucket_reso"),
        ("caption_extension = 'txt'", "caption_extension must start with a dot"),
        ("seed = = 3", "is not valid TOML"),
    ],
)
def test_validation_errors_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        read_config(path).validate(check_paths=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_paths_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretrained_model_name_or_path is not set"):
        TrainConfig().validate()
    with pytest.raises(ConfigError, match="base model not found"):
        TrainConfig(pretrained_model_name_or_path=str(tmp_path / "nope.safetensors")).validate()
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    with pytest.raises(ConfigError, match="train_data_dir is not a folder"):
        TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path / "x")).validate()


def test_adamw8bit_without_bitsandbytes_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="AdamW8bit needs bitsandbytes"):
        TrainConfig(optimizer_type="AdamW8bit").validate()
    TrainConfig(optimizer_type="AdamW8bit").validate(check_paths=False)  # --init may still write it


def test_step_override_alone_replaces_the_epoch_count() -> None:
    base = TrainConfig()
    assert apply_overrides(base, {"max_train_steps": 500}).max_train_epochs == 0
    both = apply_overrides(base, {"max_train_steps": 500, "max_train_epochs": 3})
    assert (both.max_train_steps, both.max_train_epochs) == (500, 3)
    assert apply_overrides(base, {"sample_prompts": ("a", "b"), "seed": None}).sample_prompts == ["a", "b"]


def test_cli_help_lists_every_field_with_its_default() -> None:
    result = CliRunner().invoke(train, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    for spec in dataclasses.fields(TrainConfig):
        assert "--" + spec.name.replace("_", "-") in help_text
    assert "[default: 1280]" in help_text and "[default: 'fp16']" in help_text


def test_cli_init_writes_defaults_and_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "train.toml"
    result = runner.invoke(train, [str(path), "--init", "--resolution", "768"])
    assert result.exit_code == 0 and read_config(path).resolution == 768
    result = runner.invoke(train, [str(path)])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: pretrained_model_name_or_path is not set (a local model file or diffusers folder)"
    )
    result = runner.invoke(train, [str(tmp_path / "missing.toml")])
    assert result.exit_code == 1 and "config not found" in result.output


def test_cli_model_error_is_one_line_before_the_data_is_read(tmp_path: Path) -> None:
    model = tmp_path / "base.safetensors"
    model.write_bytes(b"not a model")
    (tmp_path / "empty").mkdir()
    config = TrainConfig(
        pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path / "empty"), mixed_precision="no"
    )
    write_config(config.replace(output_dir=str(tmp_path / "out")), tmp_path / "t.toml")
    result = CliRunner().invoke(train, [str(tmp_path / "t.toml"), "--no-progress"])
    # the start-up line ("training into ... (loading torch)"), then the error in one line, before the data is read
    lines = result.output.splitlines()
    assert result.exit_code == 1 and len(lines) == 2 and lines[0].startswith("training into")
    assert (
        lines[1].startswith("Error: ") and "base.safetensors" in lines[1] and "Traceback" not in result.output
    )
