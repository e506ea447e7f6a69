"""SDXL model I/O: our single file round-trips; diffusers' own SDXL single-file reader gives identical tensors; a
real-size SDXL (meta device) has the release's key set and shapes; refiner and inpainting are refused; v-prediction
markers; header-only facts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from trainer.models.errors import ModelError


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl.safetensors", "sdxl")


def _flat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = _flat(a.state_dict()), _flat(b.state_dict())
    assert set(sa) == set(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])][:3]


def test_file_load_save_gives_identical_tensors_and_metadata(tiny_sdxl: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from trainer.models.io import load_model, save_single_file

    model = load_model(tiny_sdxl)
    assert model.family == "sdxl" and model.text_encoder_2 is not None
    assert model.unet.config.addition_embed_type == "text_time"
    again = save_single_file(model, tmp_path / "again.safetensors")
    original, written = load_file(str(tiny_sdxl)), load_file(str(again))
    assert set(original) == set(written)
    assert all(torch.equal(original[k], written[k]) for k in original)
    for prefix in (
        "conditioner.embedders.0.transformer.",
        "conditioner.embedders.1.model.",
        "first_stage_model.",
    ):
        assert any(k.startswith(prefix) for k in written), prefix
    assert "model.diffusion_model.label_emb.0.0.weight" in written
    with safe_open(str(again), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    half = load_file(str(save_single_file(model, tmp_path / "half.safetensors", "bf16")))
    assert half["model.diffusion_model.out.2.weight"].dtype == torch.bfloat16


def test_diffusers_single_file_reader_matches_our_modules(tiny_sdxl: Path, tmp_path: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    from trainer.models.io import load_model, save_diffusers

    ours = load_model(tiny_sdxl)
    folder = save_diffusers(ours, tmp_path / "tiny-sdxl")
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    pipe = StableDiffusionXLPipeline.from_single_file(
        str(tiny_sdxl), config=str(folder), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        _same(getattr(pipe, name), getattr(ours, name))
    # and our folder reader gives the same modules back
    back = load_model(folder)
    assert back.family == "sdxl"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        _same(getattr(back, name), getattr(ours, name))


def _meta_sdxl_ldm() -> dict[str, torch.Tensor]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.sdxl_arch import sdxl_architecture
    from trainer.models.sdxl_io import sdxl_fillers, sdxl_module_keys

    arch = sdxl_architecture()
    with torch.device("meta"):
        unet = UNet2DConditionModel(**arch.unet)
        vae = AutoencoderKL(**arch.vae)
        text1 = CLIPTextModel(CLIPTextConfig(**arch.text_encoder))
        text2 = CLIPTextModelWithProjection(CLIPTextConfig(**arch.text_encoder_2))
    state = sdxl_module_keys(unet, vae, text1, text2)
    state.update(sdxl_fillers(arch, False, False))
    return state


def test_real_size_sdxl_has_the_release_key_set_and_shapes() -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, infer_diffusers_model_type

    from trainer.models.sdxl_arch import infer_sdxl_architecture, sdxl_architecture

    state = _meta_sdxl_ldm()
    counts: dict[str, int] = {}
    for key in state:
        part = ".".join(key.split(".")[:3]) if key.startswith("conditioner.") else key.split(".")[0]
        counts[part] = counts.get(part, 0) + 1
    # sd_xl_base_1.0.safetensors: 2515 tensors (UNet 1680, CLIP-L 197 with position_ids, bigG 390 with
    # text_projection and logit_scale, VAE 248)
    assert len(state) == 2515
    assert counts == {
        "model": 1680,
        "conditioner.embedders.0": 197,
        "conditioner.embedders.1": 390,
        "first_stage_model": 248,
    }
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["model.diffusion_model.label_emb.0.0.weight"] == (1280, 2816)
    assert shapes["model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight"] == (
        1280,
        2048,
    )
    assert shapes["model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.2.weight"] == (1280, 5120)
    assert shapes["model.diffusion_model.output_blocks.2.2.conv.weight"] == (1280, 1280, 3, 3)
    assert shapes["conditioner.embedders.1.model.text_projection"] == (1280, 1280)
    assert shapes["conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight"] == (
        3840,
        1280,
    )
    assert shapes["conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc1.weight"] == (
        3072,
        768,
    )
    unet_params = sum(v.numel() for k, v in state.items() if k.startswith("model.diffusion_model."))
    assert unet_params == 2_567_463_684
    assert infer_diffusers_model_type(state) == "xl_base"
    assert infer_sdxl_architecture(shapes) == sdxl_architecture()
    # diffusers' own converter maps the UNet keys back onto the full diffusers key set
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**sdxl_architecture().unet)
    assert set(convert_ldm_unet_checkpoint(state, sdxl_architecture().unet)) == set(unet.state_dict())


def _shapes(state: dict[str, torch.Tensor], **changes: tuple[int, ...] | None) -> dict[str, SimpleNamespace]:
    out = {k: SimpleNamespace(shape=tuple(v.shape)) for k, v in state.items()}
    for key, shape in changes.items():
        if shape is None:
            out.pop(key.replace("__", "."), None)
        else:
            out[key.replace("__", ".")] = SimpleNamespace(shape=shape)
    return out


def test_refiner_inpainting_and_incomplete_files_are_refused() -> None:
    from trainer.models.files import check_base_model

    state = _meta_sdxl_ldm()
    assert check_base_model(_shapes(state), "base") == "sdxl"
    refiner = _shapes(state)
    refiner["conditioner.embedders.0.model.text_projection"] = SimpleNamespace(shape=(1280, 1280))
    with pytest.raises(ModelError, match="refiner"):
        check_base_model(refiner, "refiner")
    inpaint = _shapes(state)
    inpaint["model.diffusion_model.input_blocks.0.0.weight"] = SimpleNamespace(shape=(320, 9, 3, 3))
    with pytest.raises(ModelError, match="9 input channels"):
        check_base_model(inpaint, "inpaint")
    no_te2 = {k: v for k, v in _shapes(state).items() if not k.startswith("conditioner.embedders.1.")}
    with pytest.raises(ModelError, match="text encoder 2"):
        check_base_model(no_te2, "half")


def test_derivative_without_our_metadata_loads_as_sdxl(tiny_sdxl: Path, tmp_path: Path) -> None:
    """A Pony / Illustrious-style file: SDXL's tensors, someone else's metadata (and a v_pred marker, NoobAI)."""
    from safetensors.torch import load_file, save_file

    from trainer.models.info import inspect_model
    from trainer.models.io import load_model, save_single_file

    state = load_file(str(tiny_sdxl))
    state["v_pred"] = torch.tensor([])
    path = tmp_path / "derivative.safetensors"
    save_file(state, str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    model = load_model(path)
    assert model.family == "sdxl" and model.v_parameterization
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    assert model.unet.state_dict()["conv_in.weight"].shape == (32, 4, 3, 3)
    assert inspect_model(path)["v_parameterization"] == "true"
    written = load_file(str(save_single_file(model, tmp_path / "back.safetensors")))
    assert "v_pred" in written and set(written) == set(state)


def test_header_facts_and_cli(tiny_sdxl: Path, tmp_path: Path) -> None:
    from curator.cli import cli as main
    from curator.plan.modelfile import read_model_facts

    facts = read_model_facts(tiny_sdxl)
    assert facts.family == "sdxl" and facts.plan_model == "sdxl"
    assert facts.text_encoder_params > 0 and facts.text_encoder_2_params > facts.text_encoder_params
    runner = CliRunner()
    result = runner.invoke(main, ["model", "info", str(tiny_sdxl)])
    assert result.exit_code == 0 and "Stable Diffusion XL" in result.output
    out = tmp_path / "t.safetensors"
    result = runner.invoke(main, ["model", "tiny", str(out), "--family", "sdxl"])
    assert result.exit_code == 0, result.output
    assert read_model_facts(out).family == "sdxl"
    result = runner.invoke(main, ["model", "convert", str(out), str(tmp_path / "t16.safetensors")])
    assert result.exit_code == 0 and "sdxl, fp16" in result.output


def test_v_prediction_with_zero_terminal_snr_is_written_and_read_back(
    tiny_sdxl: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from curator.settings.config import TrainConfig
    from trainer.loop import load_models
    from trainer.models.io import load_model, save_single_file
    from trainer.noise import training_scheduler

    config = TrainConfig(
        pretrained_model_name_or_path=str(tiny_sdxl), v_parameterization=True, zero_terminal_snr=True
    )
    model = load_models(config)
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    assert model.noise_scheduler.config.rescale_betas_zero_snr
    rescaled = training_scheduler(model.noise_scheduler, config.zero_terminal_snr)
    assert float(rescaled.alphas_cumprod[-1]) < 1e-6  # the last step is pure noise
    path = save_single_file(model, tmp_path / "vpred.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        assert {"v_pred", "ztsnr"} <= set(handle.keys())  # ComfyUI's markers
        assert handle.metadata()["modelspec.prediction_type"] == "v"
    back = load_model(path)
    assert back.v_parameterization and back.noise_scheduler.config.rescale_betas_zero_snr
