"""Every file we refuse as a base model, crafted here, gets a clear ModelError; safe .ckpt, EMA and VAE inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from trainer.models.errors import ModelError  # noqa: E402
from trainer.models.files import read_state_dict  # noqa: E402
from trainer.models.io import load_model, save_single_file  # noqa: E402
from trainer.models.tiny import tiny_configs, write_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_state(tiny: Path) -> dict:
    return load_file(tiny)


def _write(path: Path, state: dict) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _refused(path: Path, pattern: str) -> None:
    with pytest.raises(ModelError, match=pattern) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_lora_is_refused(tmp_path: Path) -> None:
    lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32)}
    _refused(_write(tmp_path / "style.safetensors", lora), "LoRA")
    peft = {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 32)}
    _refused(_write(tmp_path / "peft.safetensors", peft), "LoRA")


def test_embeddings_are_refused(tmp_path: Path) -> None:
    _refused(_write(tmp_path / "emb.safetensors", {"emb_params": torch.zeros(2, 768)}), "textual-inversion")
    ckpt = tmp_path / "emb.pt"
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.zeros(2, 768)}}, ckpt)
    _refused(ckpt, "textual-inversion")


def test_sdxl_and_other_families_are_refused(tmp_path: Path, tiny_state: dict) -> None:
    sdxl = dict(tiny_state)
    sdxl["conditioner.embedders.1.model.positional_embedding"] = torch.zeros(77, 32)
    _refused(_write(tmp_path / "xl.safetensors", sdxl), "SDXL")
    flux = {"double_blocks.0.img_attn.norm.key_norm.scale": torch.zeros(8)}
    _refused(_write(tmp_path / "flux.safetensors", flux), "not a Stable Diffusion 1.x / 2.x checkpoint.*flux")
    inpaint = dict(tiny_state)
    inpaint["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(32, 9, 3, 3)
    _refused(_write(tmp_path / "inpaint.safetensors", inpaint), "9 input channels")


def test_partial_checkpoints_are_refused(tmp_path: Path, tiny_state: dict) -> None:
    vae_only = {
        k.removeprefix("first_stage_model."): v for k, v in tiny_state.items() if k.startswith("first_stage")
    }
    _refused(_write(tmp_path / "vae.safetensors", vae_only), "VAE alone.*--vae")
    unet_only = {k: v for k, v in tiny_state.items() if k.startswith("model.diffusion_model.")}
    _refused(_write(tmp_path / "unet.safetensors", unet_only), "no text encoder")
    holed = {k: v for k, v in tiny_state.items() if "input_blocks.4.1." not in k}
    _refused(_write(tmp_path / "holed.safetensors", holed), "do not fit the architecture")


def test_truncated_and_corrupt_files_are_refused(tmp_path: Path, tiny: Path) -> None:
    data = tiny.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut, "truncated or corrupt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x80\x02not really a checkpoint" * 10)
    _refused(garbage, "truncated or corrupt")
    _refused(tmp_path / "missing.safetensors", "no such file")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    _refused(other, "unsupported file type")


def test_ckpt_needing_pickle_is_refused_and_safe_ckpt_loads(
    tmp_path: Path, tiny: Path, tiny_state: dict
) -> None:
    evil = tmp_path / "old.ckpt"
    torch.save({"state_dict": tiny_state, "hparams": argparse.Namespace(lr=1e-4)}, evil)
    _refused(evil, r"refused.*pickle to load \(argparse.Namespace\)")
    safe = tmp_path / "safe.ckpt"
    torch.save({"state_dict": tiny_state, "global_step": 470000, "epoch": 3}, safe)
    model = load_model(safe)
    saved = load_file(save_single_file(model, tmp_path / "from_ckpt.safetensors"))
    assert set(saved) == set(tiny_state)
    assert all(torch.equal(saved[k], tiny_state[k]) for k in tiny_state)


def test_ema_weights_are_reported_used_on_request_and_not_saved(tmp_path: Path, tiny_state: dict) -> None:
    from trainer.models.files import ema_key

    with_ema = dict(tiny_state)
    for key, value in tiny_state.items():
        if key.startswith("model.diffusion_model."):
            with_ema[ema_key(key)] = value + 1
    with_ema["model_ema.decay"] = torch.tensor(0.9999)
    path = _write(tmp_path / "ema.safetensors", with_ema)
    plain = load_model(path)
    assert plain.ema_in_source and not plain.ema_used
    ema = load_model(path, use_ema=True)
    assert ema.ema_used
    key = "model.diffusion_model.out.2.weight"
    assert torch.equal(ema.unet.conv_out.weight, tiny_state[key] + 1)
    assert torch.equal(plain.unet.conv_out.weight, tiny_state[key])
    saved = load_file(save_single_file(ema, tmp_path / "trained.safetensors"))
    assert not any(k.startswith("model_ema.") for k in saved)
    assert torch.equal(saved[key], tiny_state[key] + 1)
    with pytest.raises(ModelError, match="no EMA"):
        load_model(_write(tmp_path / "p.safetensors", tiny_state), use_ema=True)


def test_separate_vae_is_baked_in_and_a_misfit_is_refused(
    tmp_path: Path, tiny: Path, tiny_state: dict
) -> None:
    vae_state = {
        k.removeprefix("first_stage_model."): v * 2
        for k, v in tiny_state.items()
        if k.startswith("first_stage_model.")
    }
    vae_file = _write(tmp_path / "vae.safetensors", vae_state)
    model = load_model(tiny, vae=vae_file)
    saved = load_file(save_single_file(model, tmp_path / "with_vae.safetensors"))
    for key, value in vae_state.items():
        assert torch.equal(saved["first_stage_model." + key], value), key

    from diffusers import AutoencoderKL

    from trainer.models.ldm_keys import vae_to_ldm

    cfg = dict(tiny_configs().vae, latent_channels=16)
    other = vae_to_ldm(AutoencoderKL(**cfg).state_dict(), cfg)
    misfit = _write(
        tmp_path / "vae16.safetensors", {k.removeprefix("first_stage_model."): v for k, v in other.items()}
    )
    with pytest.raises(ModelError, match="does not fit"):
        load_model(tiny, vae=misfit)


def test_read_state_dict_unwraps_nested_state_dict(tmp_path: Path, tiny_state: dict) -> None:
    path = tmp_path / "nested.ckpt"
    torch.save({"state_dict": {"state_dict": {"a": torch.ones(2)}}}, path)
    state, meta = read_state_dict(path)
    assert list(state) == ["a"] and meta == {}


def test_old_sd1_text_encoder_names_are_accepted(tmp_path: Path, tiny: Path, tiny_state: dict) -> None:
    prefix = "cond_stage_model.transformer.text_model."
    old = {k.replace(prefix, "cond_stage_model.transformer."): v for k, v in tiny_state.items()}
    model = load_model(_write(tmp_path / "old.safetensors", old))
    saved = load_file(save_single_file(model, tmp_path / "new.safetensors"))
    assert set(saved) == set(tiny_state)


def test_checkpoint_without_vae_takes_the_separate_one(tmp_path: Path, tiny: Path, tiny_state: dict) -> None:
    from trainer.models.arch import VAE_PREFIX

    no_vae = {k: v for k, v in tiny_state.items() if not k.startswith(VAE_PREFIX)}
    path = _write(tmp_path / "novae.safetensors", no_vae)
    _refused(path, "no VAE")
    vae_file = _write(
        tmp_path / "vae.safetensors",
        {k.removeprefix(VAE_PREFIX): v for k, v in tiny_state.items() if k.startswith(VAE_PREFIX)},
    )
    with pytest.raises(
        ModelError, match="does not fit"
    ):  # the standard SD VAE is wider than the tiny model's
        load_model(path, vae=vae_file)
    with safe_open(str(tiny), framework="pt") as handle:  # with our metadata the tiny architecture is known
        meta = handle.metadata()
    described = tmp_path / "novae_meta.safetensors"
    save_file(no_vae, str(described), metadata=meta)
    model = load_model(described, vae=vae_file)
    saved = load_file(save_single_file(model, tmp_path / "baked.safetensors"))
    assert set(saved) == set(tiny_state)
    assert all(torch.equal(saved[k], tiny_state[k]) for k in tiny_state)
