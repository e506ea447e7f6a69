"""SDXL model I/O: the LDM single-file layout (``conditioner.embedders.0`` CLIP ViT-L, ``conditioner.embedders.1``
OpenCLIP bigG with its text projection, the UNet with ``label_emb``) and diffusers folders, both ways, offline.

LDM -> diffusers reuses diffusers' converters; diffusers -> LDM is ours (``trainer.models.ldm_keys`` plus the two
text encoders here). The text projection is stored as OpenCLIP holds it (``pooled = x @ P``), the transpose of
transformers' ``Linear`` weight, exactly as the SDXL base release. ``trainer.models.io`` dispatches here by family.

Example::

    parts = load_sdxl_parts(state, metadata, "model.safetensors", use_ema=False, dtype=torch.float32)
    state = sdxl_ldm_keys(model)          # {"conditioner.embedders.1.model.text_projection": ..., ...}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainer.models import ldm_keys
from trainer.models.arch import SD2_TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, Architecture
from trainer.models.errors import ModelError
from trainer.models.sdxl_arch import (
    SDXL_REFINER_TEXT_PREFIX,
    SDXL_TEXT1_PREFIX,
    SDXL_TEXT2_PREFIX,
    V_PRED_MARKER,
    ZTSNR_MARKER,
    infer_sdxl_architecture,
)

#: Kohya's ss_base_model_version and the modelspec architecture of an SDXL base model
KOHYA_BASE_VERSION = "sdxl_base_v1-0"
MODELSPEC_SDXL = "stable-diffusion-xl-v1-base"
#: how a key of an SDXL-type file starts (both text encoders, or the UNet's added embedding)
SDXL_MARKERS = ("conditioner.embedders.", UNET_PREFIX + "label_emb.")


def is_sdxl_keys(keys: Any) -> bool:
    """Whether LDM keys belong to an SDXL-type model (base, refiner, inpainting or a derivative)."""
    return any(k.startswith(SDXL_MARKERS) for k in keys)


def check_sdxl(state: dict[str, Any], name: str, vae_given: bool) -> str:
    """Refuse SDXL variants we do not fine-tune (refiner, inpainting, a UNet alone); returns "sdxl" for a base
    model or a derivative of one (Pony, Illustrious, NoobAI: the same tensors)."""
    keys = set(state)
    if any(k.startswith(SDXL_REFINER_TEXT_PREFIX) for k in keys):
        raise ModelError(
            f"{name}: this is the SDXL refiner (one OpenCLIP text encoder, aesthetic-score conditioning); it "
            "polishes a base model's last denoising steps and is not a base to fine-tune: train SDXL base"
        )
    conv_in = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is None:
        raise ModelError(f"{name}: an SDXL file without a UNet (text encoders only?); give a full SDXL model")
    if conv_in.shape[1] != 4:
        raise ModelError(
            f"{name}: an SDXL UNet with {conv_in.shape[1]} input channels (inpainting or instruct); dreamcurate "
            "trains text-to-image base models (4 channels)"
        )
    missing = [
        what
        for what, prefix in (
            ("text encoder 1 (CLIP ViT-L)", SDXL_TEXT1_PREFIX),
            ("text encoder 2", SDXL_TEXT2_PREFIX),
        )
        if not any(k.startswith(prefix) for k in keys)
    ]
    if missing or UNET_PREFIX + "label_emb.0.0.weight" not in keys:
        gap = ", ".join(missing) or "the UNet's label_emb"
        raise ModelError(f"{name}: an incomplete SDXL file (no {gap}); give a full SDXL base checkpoint")
    if not vae_given and not any(k.startswith(VAE_PREFIX) for k in keys):
        raise ModelError(f"{name}: no VAE in the file; give a full SDXL model (or add one with --vae)")
    return "sdxl"


def is_v_prediction(state_keys: Any, metadata: dict[str, str]) -> bool:
    """v-prediction as the file says it: our metadata, modelspec's prediction type, or ComfyUI's ``v_pred`` marker
    tensor (NoobAI-style files)."""
    return (
        metadata.get("dreamcurate.v_parameterization") == "true"
        or metadata.get("modelspec.prediction_type", "").lower() in ("v", "v_prediction", "v-prediction")
        or V_PRED_MARKER in state_keys
    )


def _text1_factory(arch: Architecture) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**arch.text_encoder)
    return lambda: CLIPTextModel(config)


def _text2_factory(arch: Architecture) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(**arch.text_encoder_2)
    return lambda: CLIPTextModelWithProjection(config)


def _convert_text1(state: dict[str, Any]) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    ours = {k: v for k, v in state.items() if k.startswith(SDXL_TEXT1_PREFIX)}
    converted = convert_ldm_clip_checkpoint(ours)
    converted.pop("text_model.embeddings.position_ids", None)  # a buffer the model rebuilds
    # transformers 5's CLIPTextModel has no text_model level (CLIPTextModelWithProjection still has it)
    return {k.removeprefix("text_model."): v for k, v in converted.items()}


def _convert_text2(state: dict[str, Any], arch: Architecture) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    width = arch.text_encoder_2["hidden_size"]
    holder = type("TextModelStub", (), {"config": type("C", (), {"hidden_size": width})})
    ours = {k: v for k, v in state.items() if k.startswith(SDXL_TEXT2_PREFIX)}
    return dict(convert_open_clip_checkpoint(holder, ours, prefix=SDXL_TEXT2_PREFIX))


def load_sdxl_parts(
    state: dict[str, Any],
    metadata: dict[str, str],
    name: str,
    use_ema: bool,
    dtype: Any,
    arch: Architecture | None,
) -> tuple[Any, ...]:
    """The diffusers modules of an SDXL LDM state dict (already checked): (unet, vae, text1, arch, extras,
    ema_present, v_recorded, text2). ``arch``: the architecture our own files record, else inferred from shapes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from trainer.models.files import has_ema
    from trainer.models.io import _build, _use_ema

    if arch is None or arch.family != "sdxl":
        try:
            arch = infer_sdxl_architecture({k: tuple(v.shape) for k, v in state.items()})
        except (KeyError, StopIteration, ZeroDivisionError, IndexError) as exc:
            raise ModelError(f"{name}: the weights do not have the SDXL layout (missing {exc})") from exc
    ema_present = has_ema(state)
    if use_ema and not ema_present:
        raise ModelError(f"{name}: --use-ema asked for, but the file has no EMA weights")
    source = _use_ema(state) if use_ema else state
    unet = _build(
        lambda: UNet2DConditionModel(**arch.unet),
        convert_ldm_unet_checkpoint(source, arch.unet),
        "UNet",
        name,
        dtype,
    )
    vae: Any
    if any(k.startswith(VAE_PREFIX) for k in state):
        vae_sd = convert_ldm_vae_checkpoint(source, arch.vae)
        vae = _build(lambda: AutoencoderKL(**arch.vae), vae_sd, "VAE", name, dtype)
    else:  # the --vae file fills it (load_vae_into)
        vae = AutoencoderKL(**arch.vae)
        vae.to(dtype).eval()
    text1 = _build(_text1_factory(arch), _convert_text1(state), "text encoder 1", name, dtype)
    text2 = _build(_text2_factory(arch), _convert_text2(state, arch), "text encoder 2", name, dtype)
    produced = set(sdxl_module_keys(unet, vae, text1, text2))
    extras = {k: v for k, v in state.items() if k not in produced and not k.startswith("model_ema.")}
    v_pred = is_v_prediction(state, metadata)
    return unet, vae, text1, arch, extras, ema_present, v_pred, text2


def text2_to_ldm(state: dict[str, Any]) -> dict[str, Any]:
    """CLIPTextModelWithProjection state dict -> ``conditioner.embedders.1.model.*`` (OpenCLIP layout; q, k, v
    fused; the projection transposed back to OpenCLIP's ``x @ P`` form)."""
    flat = dict(state)
    projection = flat.pop("text_projection.weight")
    out = {
        SDXL_TEXT2_PREFIX + k.removeprefix(SD2_TEXT_PREFIX): v
        for k, v in ldm_keys.open_clip_to_ldm(flat).items()
    }
    out[SDXL_TEXT2_PREFIX + "text_projection"] = projection.t()
    return out


def sdxl_module_keys(unet: Any, vae: Any, text1: Any, text2: Any) -> dict[str, Any]:
    """The LDM keys (and tensors) the four modules produce."""
    out = ldm_keys.unet_to_ldm(unet.state_dict(), unet.config)
    out.update(ldm_keys.vae_to_ldm(vae.state_dict(), vae.config))
    out.update({SDXL_TEXT1_PREFIX + k.removeprefix("text_model."): v for k, v in text1.state_dict().items()})
    out.update(text2_to_ldm(text2.state_dict()))
    return out


def sdxl_fillers(arch: Architecture, v_prediction: bool, zero_snr: bool) -> dict[str, Any]:
    """Keys the SDXL release has that the diffusers modules do not (position ids, OpenCLIP's logit scale), and
    ComfyUI's v-prediction markers."""
    import torch

    positions = arch.text_encoder["max_position_embeddings"]
    fill: dict[str, Any] = {
        SDXL_TEXT1_PREFIX + "embeddings.position_ids": torch.arange(positions).unsqueeze(0),
        SDXL_TEXT2_PREFIX + "logit_scale": torch.tensor(math.log(1 / 0.07)),
    }
    if v_prediction:
        fill[V_PRED_MARKER] = torch.tensor([])
        if zero_snr:
            fill[ZTSNR_MARKER] = torch.tensor([])
    return fill


def sdxl_model_index() -> dict[str, Any]:
    """model_index.json of an SDXL diffusers folder (StableDiffusionXLPipeline)."""
    import diffusers

    return {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "image_encoder": [None, None],
        "feature_extractor": [None, None],
        "force_zeros_for_empty_prompt": True,
    }


def is_sdxl_folder(folder: Path) -> bool:
    """Whether a diffusers folder holds an SDXL model (a second text encoder beside the first)."""
    return (Path(folder) / "text_encoder_2").is_dir() and (Path(folder) / "text_encoder").is_dir()


def load_sdxl_folder(folder: Path, dtype: Any) -> tuple[Any, ...]:
    """The parts of an SDXL diffusers folder, as :func:`load_sdxl_parts` returns them."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.io import _plain_config, _text_keys

    if not (folder / "unet").is_dir() or not (folder / "vae").is_dir():
        raise ModelError(
            f"{folder}: not a diffusers SDXL folder (needs unet/, vae/, text_encoder/, text_encoder_2/)"
        )
    index = folder / "model_index.json"
    if index.is_file() and "Refiner" in json.loads(index.read_text()).get("_class_name", ""):
        raise ModelError(
            f"{folder}: this is the SDXL refiner; it is not a base to fine-tune: train SDXL base"
        )
    try:
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", local_files_only=True, torch_dtype=dtype
        )
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True, torch_dtype=dtype)
        text1 = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True, dtype=dtype)
        text2 = CLIPTextModelWithProjection.from_pretrained(
            folder / "text_encoder_2", local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: cannot load the diffusers folder ({exc})") from exc
    if unet.config.in_channels != 4:
        raise ModelError(f"{folder}: an SDXL UNet with {unet.config.in_channels} input channels (inpainting)")
    arch = Architecture(
        "sdxl",
        _plain_config(unet.config),
        _plain_config(vae.config),
        {k: getattr(text1.config, k) for k in _text_keys()},
        text1.config.num_hidden_layers,
        {k: getattr(text2.config, k) for k in _text_keys()},
    )
    scheduler_cfg = folder / "scheduler" / "scheduler_config.json"
    v_pred = (
        scheduler_cfg.is_file()
        and json.loads(scheduler_cfg.read_text()).get("prediction_type") == "v_prediction"
    )
    return unet.eval(), vae.eval(), text1.eval(), arch, {}, False, v_pred, text2.eval()
