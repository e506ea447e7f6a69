"""Model I/O on the tiny model: bit-exact round trips, precision, atomic writes, the exact inverse of diffusers'
converters (read back by diffusers itself), and a denoising pass on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from trainer.models.errors import ModelError  # noqa: E402
from trainer.models.io import load_model, save_diffusers, save_single_file  # noqa: E402
from trainer.models.tiny import build_random_model, tiny_configs, write_tiny_diffusers, write_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_sd1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny1") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_sd2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny2") / "tiny2.safetensors", family="sd2")


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_round_trip_is_bit_identical(family: str, tiny_sd1: Path, tiny_sd2: Path, tmp_path: Path) -> None:
    src = tiny_sd1 if family == "sd1" else tiny_sd2
    model = load_model(src)
    assert model.family == family
    out = save_single_file(model, tmp_path / "again.safetensors", precision="float")
    _assert_same_tensors(load_file(src), load_file(out))


def test_tiny_model_is_deterministic_and_has_sd1_layout(tiny_sd1: Path, tmp_path: Path) -> None:
    again = write_tiny_model(tmp_path / "again.safetensors")
    _assert_same_tensors(load_file(tiny_sd1), load_file(again))
    keys = set(load_file(tiny_sd1))
    assert "model.diffusion_model.output_blocks.11.0.skip_connection.weight" in keys  # diffusers' SD1 marker
    assert "model.diffusion_model.input_blocks.7.1.transformer_blocks.0.attn2.to_k.weight" in keys
    assert "model.diffusion_model.input_blocks.11.0.in_layers.2.weight" in keys  # fourth, plain level
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    emb = load_file(tiny_sd1)["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"]
    assert emb.shape[0] == 49408


def test_fp16_halves_the_size_and_bf16_casts(tiny_sd1: Path, tmp_path: Path) -> None:
    model = load_model(tiny_sd1)
    half = save_single_file(model, tmp_path / "half.safetensors", precision="fp16")
    bf = save_single_file(model, tmp_path / "bf.safetensors", precision="bf16")
    ratio = half.stat().st_size / tiny_sd1.stat().st_size
    assert 0.49 < ratio < 0.51
    tensors = load_file(bf)
    assert tensors["model.diffusion_model.out.2.weight"].dtype == torch.bfloat16
    assert tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == torch.int64
    assert model.unet.dtype == torch.float32  # saving never changes the model in memory


def test_metadata_records_settings_and_rejects_non_strings(tiny_sd1: Path, tmp_path: Path) -> None:
    model = load_model(tiny_sd1)
    out = save_single_file(model, tmp_path / "m.safetensors", metadata={"ss_max_train_epochs": "200"})
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["ss_max_train_epochs"] == "200"
    assert meta["dreamcurate.family"] == "sd1"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1"
    with pytest.raises(ModelError, match="strings"):
        save_single_file(model, tmp_path / "bad.safetensors", metadata={"epochs": 200})  # type: ignore[dict-item]


def test_save_is_atomic(tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(tiny_sd1)
    target = tmp_path / "keep.safetensors"
    target.write_bytes(b"old contents")

    def broken(state, filename, metadata=None):  # writes half a file, then dies
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_single_file(model, target, overwrite=True)
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors"]


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_diffusers_reads_our_file_back_identically(
    family: str, tiny_sd1: Path, tiny_sd2: Path, tmp_path: Path
) -> None:
    """Our diffusers -> LDM mapping is the exact inverse of diffusers' own LDM -> diffusers converters."""
    from diffusers import StableDiffusionPipeline

    folder = write_tiny_diffusers(tmp_path / "cfg", family)
    pipe = StableDiffusionPipeline.from_single_file(
        str(tiny_sd1 if family == "sd1" else tiny_sd2),
        config=str(folder),
        local_files_only=True,
        safety_checker=None,
    )
    original = build_random_model(tiny_configs(family))  # the in-memory model the file was written from
    for name in ("unet", "vae", "text_encoder"):
        _assert_same_tensors(getattr(original, name).state_dict(), getattr(pipe, name).state_dict())


def test_diffusers_folder_loads_to_the_same_model(tiny_sd1: Path, tmp_path: Path) -> None:
    single = load_model(tiny_sd1)
    folder = save_diffusers(single, tmp_path / "diff", precision="float")
    again = load_model(folder)
    for name in ("unet", "vae", "text_encoder"):
        _assert_same_tensors(getattr(single, name).state_dict(), getattr(again, name).state_dict())
    back = save_single_file(again, tmp_path / "back.safetensors")
    _assert_same_tensors(load_file(tiny_sd1), load_file(back))


def test_v_parameterization_is_recorded(tiny_sd2: Path, tmp_path: Path) -> None:
    model = load_model(tiny_sd2, v_parameterization=True)
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    out = save_single_file(model, tmp_path / "v.safetensors")
    reloaded = load_model(out)
    assert reloaded.v_parameterization
    with safe_open(str(out), framework="pt") as handle:
        assert handle.metadata()["modelspec.architecture"] == "stable-diffusion-v2-768-v"
    assert load_model(tiny_sd2).noise_scheduler.config.prediction_type == "epsilon"


def test_tiny_model_denoises_and_decodes_on_cpu(tiny_sd1: Path) -> None:
    model = load_model(tiny_sd1)
    sched = model.noise_scheduler
    assert sched.config.beta_schedule == "scaled_linear" and sched.config.num_train_timesteps == 1000
    ids = model.tokenizer(
        ["a photo of sks dog"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        hidden = model.text_encoder(ids)[0]
        pixels = torch.rand(1, 3, 64, 64) * 2 - 1
        latents = model.vae.encode(pixels).latent_dist.sample() * model.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.tensor([500])
        noisy = sched.add_noise(latents, noise, t)
        pred = model.unet(noisy, t, encoder_hidden_states=hidden).sample
        denoised = sched.step(pred, 500, noisy).prev_sample
        image = model.vae.decode(denoised / model.vae.config.scaling_factor).sample
    assert hidden.shape == (1, 77, 32)
    assert pred.shape == latents.shape == (1, 4, 8, 8)
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()


def test_tokenizer_is_clip_with_family_padding(tiny_sd1: Path, tiny_sd2: Path) -> None:
    sd1, sd2 = load_model(tiny_sd1).tokenizer, load_model(tiny_sd2).tokenizer
    assert sd1("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (sd1.pad_token_id, sd2.pad_token_id) == (49407, 0)  # SD 2's OpenCLIP pads with "!"
    assert sd1.model_max_length == 77
