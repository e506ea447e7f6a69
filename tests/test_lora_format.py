"""LoRA files in Kohya's format: every layer we save is applied by diffusers' load_lora_weights with the scale our
trainer used (SD 1 and SD 2 shapes), a saved file reloads into the trainer's adapters, and Kohya's metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.settings.config import ConfigError, TrainConfig

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lora_config(**changes: object) -> TrainConfig:
    settings = {"network_module": "networks.lora", "network_dim": 4, "network_alpha": 1.0, "conv_dim": 2}
    settings.update({"conv_alpha": 3.0, **changes})
    return TrainConfig(**settings)  # type: ignore[arg-type]


def adapted_model(family: str, config: TrainConfig, seed: int = 5) -> object:
    """The tiny model with the config's adapters, their up weights made non-zero (a trained LoRA, deterministic)."""
    from trainer.lora.network import adapter_parameters, attach
    from trainer.models.tiny import build_random_model, tiny_configs

    model = build_random_model(tiny_configs(family))
    attach(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (model.unet, model.text_encoder):
            for param in adapter_parameters(module):
                param.copy_(0.2 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_every_saved_layer_is_applied_by_diffusers_with_our_scale(family: str, tmp_path: Path) -> None:
    from trainer.lora.check import apply_lora, base_pipeline, fixed_outputs, lora_model
    from trainer.lora.files import write_lora
    from trainer.lora.network import kohya_tensors
    from trainer.lora.targets import find_targets
    from trainer.models.tiny import build_random_model, tiny_configs

    ours = adapted_model(family, lora_config())
    tensors = kohya_tensors(ours.unet, ours.text_encoder)
    path = write_lora(tmp_path / "x.safetensors", tensors, {"ss_network_module": "networks.lora"})

    base = build_random_model(tiny_configs(family))
    expected = {t.name for t in find_targets(base.unet, base.text_encoder, conv=True)}
    assert {k.split(".")[0] for k in tensors} == expected  # every Kohya target, 3x3 convs included
    assert any(k.endswith("proj_in.lora_down.weight") for k in tensors)
    pipe = base_pipeline(base)
    report = apply_lora(pipe, path)
    assert report.unmatched == [] and len(report.matched) == len(expected)

    # Same outputs as our trainer's model: diffusers applied each layer's alpha / rank as we trained it.
    ours_text, ours_pred = fixed_outputs(ours)
    theirs_text, theirs_pred = fixed_outputs(lora_model(base, pipe))
    plain_text, _ = fixed_outputs(build_random_model(tiny_configs(family)))
    assert not torch.allclose(ours_text, plain_text, atol=1e-4)  # the LoRA does change the output
    assert torch.allclose(ours_text, theirs_text, rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours_pred, theirs_pred, rtol=1e-4, atol=1e-5)


def test_a_saved_lora_reloads_into_the_trainer(tmp_path: Path) -> None:
    from trainer.lora.files import read_lora, write_lora
    from trainer.lora.network import attach, kohya_tensors
    from trainer.models.tiny import build_random_model, tiny_configs

    saved = kohya_tensors(*_parts(adapted_model("sd1", lora_config())))
    path = write_lora(tmp_path / "x.safetensors", saved, {})
    model = build_random_model(tiny_configs("sd1"))
    attach(model, lora_config(network_weights=str(path)))
    loaded = kohya_tensors(model.unet, model.text_encoder)
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert read_lora(path)[0].keys() == saved.keys()

    # a file of another rank is refused with the setting to change
    other = build_random_model(tiny_configs("sd1"))
    with pytest.raises(ConfigError, match="network_dim"):
        attach(other, lora_config(network_dim=8, network_weights=str(path)))


def _parts(model: object) -> tuple[object, object]:
    return model.unet, model.text_encoder  # type: ignore[attr-defined]


def test_unet_only_and_precision(tmp_path: Path) -> None:
    from safetensors import safe_open

    from trainer.lora.files import write_lora
    from trainer.lora.network import kohya_tensors

    tensors = kohya_tensors(
        *_parts(adapted_model("sd1", lora_config(network_train_unet_only=True, conv_dim=0)))
    )
    assert tensors and all(k.startswith("lora_unet_") for k in tensors)
    assert not any("resnets" in k for k in tensors)  # no conv_dim: only the transformer blocks
    path = write_lora(tmp_path / "x.safetensors", tensors, {"ss_network_dim": "4"}, precision="fp16")
    with safe_open(str(path), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}  # noqa: SIM118
        meta = handle.metadata()
    assert meta["ss_network_dim"] == "4" and len(meta["sshs_model_hash"]) == 64
    assert not list(tmp_path.glob(".*")), "a temporary was left behind"


def test_kohya_metadata_values() -> None:
    from trainer.lora.files import base_model_version, network_metadata, tag_frequency

    assert tag_frequency([("10_sks", "sks dog, Red,  red"), ("10_sks", "sks dog"), ("1_x", "")]) == {
        "10_sks": {"sks dog": 2, "red": 2},
        "1_x": {},
    }
    assert [base_model_version("sd1", False), base_model_version("sd2", True)] == ["sd_v1", "sd_v2_v"]
    meta = network_metadata(16, 8, 4, 1, "sd2", False)
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_alpha"] == "8.0"
    assert meta["ss_v2"] == "True" and meta["ss_network_args"] == '{"conv_dim": "4", "conv_alpha": "1.0"}'


def test_lora_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unet_lr applies to LoRA"):
        TrainConfig(unet_lr=1e-4).validate(check_paths=False)
    with pytest.raises(ConfigError, match="exclude each other"):
        lora_config(network_train_unet_only=True, network_train_text_encoder_only=True).validate(
            check_paths=False
        )
    with pytest.raises(ConfigError, match="network_module"):
        TrainConfig(network_module="lycoris.kohya").validate(check_paths=False)
    ignored: list[str] = []
    with pytest.raises(ConfigError, match="network_args"):  # an unimplemented network arg is named
        TrainConfig.from_dict({"network_args": ["conv_dim=4", "algo=locon"]})
    kohya = TrainConfig.from_dict(
        {"network_args": ["conv_dim=4", "conv_alpha=2", "algo=locon"]}, ignored=ignored, skip_unsupported=True
    )
    assert (kohya.conv_dim, kohya.conv_alpha, ignored) == (4, 2.0, ["network_args"])
    assert TrainConfig.from_dict({"network_args": ["conv_dim=4"], "conv_dim": 8}).conv_dim == 8


def test_check_refuses_a_lora_of_another_family_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from curator.cli import cli
    from trainer.lora.files import network_metadata, write_lora
    from trainer.lora.network import kohya_tensors
    from trainer.models.tiny import write_tiny_model

    base = write_tiny_model(tmp_path / "sd1.safetensors", family="sd1")
    tensors = kohya_tensors(*_parts(adapted_model("sd2", lora_config(conv_dim=0))))
    for name, metadata in (("tagged", network_metadata(4, 1, 0, 1, "sd2", False)), ("bare", {})):
        path = write_lora(tmp_path / f"{name}.safetensors", tensors, metadata)
        done = CliRunner().invoke(cli, ["lora", "check", str(base), str(path)])
        assert done.exit_code == 1 and "Traceback" not in done.output, done.output
        assert ("for sd_v2" if name == "tagged" else "does not fit the base model") in done.output
    not_lora = CliRunner().invoke(cli, ["lora", "check", str(base), str(base)])
    assert not_lora.exit_code == 1 and "not a Kohya-format" in not_lora.output
