"""Full-size SD 1.5 / 2.1 architectures, built on the meta device (no memory, no download): our LDM key set is the
standard one, and diffusers' own converters map it back to exactly the diffusers modules' keys and shapes."""

from __future__ import annotations

from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from trainer.models import ldm_keys  # noqa: E402
from trainer.models.arch import Architecture, sd15_architecture, sd21_architecture  # noqa: E402

#: standard single-file key counts per component (non-EMA; SD 1.5 with position_ids, SD 2.1 with OpenCLIP's 24
#: blocks, text_projection and logit_scale) -> 1131 and 1228 in all
SD15_COUNTS = {"model.diffusion_model.": 686, "first_stage_model.": 248, "cond_stage_model.transformer.": 197}
SD21_COUNTS = {"model.diffusion_model.": 686, "first_stage_model.": 248, "cond_stage_model.model.": 294}


def _meta_modules(arch: Architecture) -> tuple:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        return (
            UNet2DConditionModel(**arch.unet),
            AutoencoderKL(**arch.vae),
            CLIPTextModel(CLIPTextConfig(**arch.text_encoder)),
        )


def _ldm(arch: Architecture) -> tuple[dict, tuple]:
    from trainer.models.io import SDModel, _standard_fillers

    unet, vae, text = _meta_modules(arch)
    state = ldm_keys.unet_to_ldm(unet.state_dict(), unet.config)
    state.update(ldm_keys.vae_to_ldm(vae.state_dict(), vae.config))
    te = text.state_dict()
    state.update(ldm_keys.clip_to_ldm(te) if arch.family == "sd1" else ldm_keys.open_clip_to_ldm(te))
    model = SDModel(unet, vae, text, None, None, arch.family, False, arch)
    for key, value in _standard_fillers(model, state).items():
        state.setdefault(key, value)
    return state, (unet, vae, text)


def _counts(state: dict, prefixes: dict[str, int]) -> Counter:
    return Counter(next((p for p in prefixes if k.startswith(p)), "other") for k in state)


@pytest.mark.parametrize(
    "arch, expected", [(sd15_architecture(), SD15_COUNTS), (sd21_architecture(), SD21_COUNTS)]
)
def test_full_size_key_set_is_standard(arch: Architecture, expected: dict[str, int]) -> None:
    state, _ = _ldm(arch)
    assert dict(_counts(state, expected)) == expected
    width = arch.text_encoder["hidden_size"]
    assert state["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape == (
        320,
        width,
    )
    assert state["model.diffusion_model.output_blocks.11.0.skip_connection.weight"].shape == (320, 640, 1, 1)
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    if arch.family == "sd2":
        block = "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight"
        assert state[block].shape == (3 * 1024, 1024)
        assert state["model.diffusion_model.input_blocks.1.1.proj_in.weight"].shape == (320, 320)
    else:
        assert state["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape == (
            49408,
            768,
        )


@pytest.mark.parametrize("arch", [sd15_architecture(), sd21_architecture()], ids=["sd15", "sd21"])
def test_diffusers_converters_invert_our_full_size_mapping(arch: Architecture) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    state, (unet, vae, text) = _ldm(arch)
    for module, converted in (
        (unet, convert_ldm_unet_checkpoint(state, arch.unet)),
        (vae, convert_ldm_vae_checkpoint(state, arch.vae)),
    ):
        expected = module.state_dict()
        assert set(converted) == set(expected)
        assert all(tuple(converted[k].shape) == tuple(expected[k].shape) for k in expected)
    if arch.family == "sd1":
        back = convert_ldm_clip_checkpoint(state)
        back.pop("text_model.embeddings.position_ids")
    else:
        back = convert_open_clip_checkpoint(text, state)
    back = {k.removeprefix("text_model."): v for k, v in back.items()}
    expected = text.state_dict()
    assert set(back) == set(expected)
    assert all(tuple(back[k].shape) == tuple(expected[k].shape) for k in expected)
