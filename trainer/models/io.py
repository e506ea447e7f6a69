"""Load Stable Diffusion 1.x / 2.x base models offline and save trained ones in the layout everyone loads.

Inputs: a single-file LDM ``.safetensors``, a ``.ckpt`` through ``torch.load(weights_only=True)`` only, or a diffusers
folder; an optional separate VAE file. The LDM -> diffusers direction reuses diffusers' converters
(``diffusers.loaders.single_file_utils``); diffusers -> LDM is ours (``trainer.models.ldm_keys``). Architecture configs are
written in the project or read from the weights' shapes, so nothing is downloaded.

Example::

    model = load_model(Path("v1-5-pruned-emaonly.safetensors"))
    ...  # train model.unet / model.text_encoder
    save_single_file(model, Path("out/sks-dog.safetensors"), precision="fp16", metadata={"ss_steps": "1200"})
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.models import ldm_keys
from trainer.models.arch import (
    SCHEDULER_CONFIG,
    SD1_TEXT_PREFIX,
    SD2_TEXT_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    Architecture,
    infer_architecture,
)
from trainer.models.errors import ModelError
from trainer.models.files import check_base_model, ema_key, has_ema, read_state_dict
from trainer.models.sdxl_arch import ZTSNR_MARKER

if TYPE_CHECKING:
    import torch

ARCH_METADATA_KEY = "dreamcurate.architecture"
PRECISIONS = ("float", "fp16", "bf16")
MODELSPEC_ARCH = {
    "sd1": "stable-diffusion-v1",
    "sd2": "stable-diffusion-v2-512",
    "sd2-v": "stable-diffusion-v2-768-v",
    "sdxl": "stable-diffusion-xl-v1-base",
    "sdxl-v": "stable-diffusion-xl-v1-base",
}


@dataclass
class SDModel:
    """A loaded SD 1.x / 2.x / SDXL model as diffusers / transformers modules.

    Example::

        model = load_model(path)
        latents = model.vae.encode(pixels).latent_dist.sample() * model.vae.config.scaling_factor
        hidden = model.text_encoder(model.tokenizer(["sks dog"], return_tensors="pt").input_ids)[0]
    """

    unet: Any  # diffusers UNet2DConditionModel
    vae: Any  # diffusers AutoencoderKL
    text_encoder: Any  # transformers CLIPTextModel (SD 2.x: the OpenCLIP ViT-H text tower, 23 of 24 layers)
    tokenizer: Any  # transformers CLIPTokenizer (SD 2.x pads with "!")
    noise_scheduler: Any  # diffusers DDPMScheduler, SD's training schedule
    family: str  # "sd1" | "sd2" | "sdxl"
    v_parameterization: bool
    architecture: Architecture
    source: Path | None = None
    #: tensors of the source file that the diffusers modules do not hold (SD 2's unused last text layer and
    #: text_projection, position_ids, schedule buffers); written back unchanged so a saved file keeps its key set
    ldm_extras: dict[str, Any] = field(default_factory=dict)
    ema_in_source: bool = False  # the source file had EMA UNet weights
    ema_used: bool = False  # ... and they were loaded instead of the non-EMA ones
    text_encoder_2: Any = None  # SDXL: transformers CLIPTextModelWithProjection (OpenCLIP bigG)
    tokenizer_2: Any = None  # SDXL: the second CLIPTokenizer (pads with "!", as OpenCLIP)

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        """The diffusers / transformers configs: {"unet": ..., "vae": ..., "text_encoder": ...}."""
        arch = self.architecture
        return {"unet": dict(arch.unet), "vae": dict(arch.vae), "text_encoder": dict(arch.text_encoder)}


def make_noise_scheduler(v_parameterization: bool, zero_terminal_snr: bool = False) -> Any:
    """SD's training noise schedule (scaled_linear 0.00085..0.012, 1000 steps; SDXL's too), epsilon or v prediction;
    ``zero_terminal_snr``: betas rescaled so the last step is pure noise (Lin et al. 2023, NoobAI-style v-pred)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=SCHEDULER_CONFIG["num_train_timesteps"],
        beta_start=SCHEDULER_CONFIG["beta_start"],
        beta_end=SCHEDULER_CONFIG["beta_end"],
        beta_schedule=SCHEDULER_CONFIG["beta_schedule"],
        clip_sample=False,
        steps_offset=1,
        prediction_type="v_prediction" if v_parameterization else "epsilon",
        rescale_betas_zero_snr=zero_terminal_snr,
    )


def _torch_dtype(precision: str) -> torch.dtype:
    import torch

    table = {"float": torch.float32, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in table:
        raise ModelError(f"unknown precision {precision!r} (use float, fp16 or bf16)")
    return table[precision]


def _build(factory: Any, state: dict[str, Any], what: str, name: str, dtype: torch.dtype) -> Any:
    """Instantiate a module without random init and load ``state`` strictly; mismatches become ModelError."""
    import torch

    with torch.device("meta"):
        module = factory()
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelError(
            f"{name}: the {what} weights do not fit the architecture ({detail}); is the file complete?"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelError(
                f"{name}: {what} tensor {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )
    cast = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    module.load_state_dict(cast, strict=True, assign=True)
    # non-persistent buffers (CLIP position_ids) are not in the state dict and still on meta: rebuild them
    for owner in module.modules():
        for buf_name, buf in list(owner.named_buffers(recurse=False)):
            if buf.is_meta:
                owner.register_buffer(buf_name, _rebuild_buffer(buf_name, buf), persistent=False)
    return module.eval()


def _rebuild_buffer(name: str, buf: Any) -> Any:
    import torch

    if name == "position_ids":
        return torch.arange(buf.shape[-1]).expand(buf.shape)
    raise ModelError(f"cannot rebuild buffer {name!r} of shape {tuple(buf.shape)}")


def _text_model_factory(arch: Architecture) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**arch.text_encoder)
    return lambda: CLIPTextModel(config)


def _convert_text(state: dict[str, Any], arch: Architecture) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    if arch.family == "sd1":
        converted = convert_ldm_clip_checkpoint(state)
        converted.pop("text_model.embeddings.position_ids", None)  # a buffer the model rebuilds
    else:
        holder = type(
            "TextModelStub", (), {"config": type("C", (), {"hidden_size": arch.text_encoder["hidden_size"]})}
        )
        converted = convert_open_clip_checkpoint(holder, state, prefix=SD2_TEXT_PREFIX)
    layers = arch.text_encoder["num_hidden_layers"]
    flat = {k.removeprefix("text_model."): v for k, v in converted.items()}
    # diffusers drops SD 2's unused last block only when it is number 23; drop any block past the used ones
    return {
        k: v
        for k, v in flat.items()
        if not (k.startswith("encoder.layers.") and int(k.split(".")[2]) >= layers)
    }


def _use_ema(state: dict[str, Any]) -> dict[str, Any]:
    swapped = dict(state)
    for key in state:
        if key.startswith(UNET_PREFIX):
            ema = state.get(ema_key(key))
            if ema is None:
                raise ModelError(f"EMA weights are incomplete: no EMA copy of {key}")
            swapped[key] = ema
    return swapped


def _recorded_architecture(metadata: dict[str, str], name: str) -> Architecture | None:
    """The architecture a file we wrote records (the tiny models need it: head counts are not in the weights)."""
    if ARCH_METADATA_KEY not in metadata:
        return None
    try:
        return Architecture.from_json(metadata[ARCH_METADATA_KEY])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{name}: unreadable {ARCH_METADATA_KEY} metadata ({exc})") from exc


def _architecture(state: dict[str, Any], metadata: dict[str, str], family: str, name: str) -> Architecture:
    arch = _recorded_architecture(metadata, name)
    if arch is not None and arch.family == family:
        return arch
    try:
        return infer_architecture(
            {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}, family
        )
    except (KeyError, StopIteration, ZeroDivisionError, IndexError) as exc:
        raise ModelError(f"{name}: the weights do not have the SD 1.x / 2.x layout (missing {exc})") from exc


def _load_single_file(path: Path, use_ema: bool, dtype: torch.dtype, vae_given: bool) -> tuple[Any, ...]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    raw, metadata = read_state_dict(path)
    family = check_base_model(
        raw, path.name, vae_given
    )  # on the raw dict: an embedding's markers are not tensors
    state = {k: v for k, v in raw.items() if hasattr(v, "shape")}
    if family == "sdxl":
        from trainer.models.sdxl_io import load_sdxl_parts

        recorded = _recorded_architecture(metadata, path.name)
        return load_sdxl_parts(state, metadata, path.name, use_ema, dtype, recorded)
    arch = _architecture(state, metadata, family, path.name)
    ema_present = has_ema(state)
    if use_ema and not ema_present:
        raise ModelError(f"{path.name}: --use-ema asked for, but the file has no EMA weights")
    source = _use_ema(state) if use_ema else state
    unet_sd = convert_ldm_unet_checkpoint(source, arch.unet)
    unet = _build(lambda: UNet2DConditionModel(**arch.unet), unet_sd, "UNet", path.name, dtype)
    vae: Any
    if any(k.startswith(VAE_PREFIX) for k in state):
        vae_sd = convert_ldm_vae_checkpoint(source, arch.vae)
        vae = _build(lambda: AutoencoderKL(**arch.vae), vae_sd, "VAE", path.name, dtype)
    else:  # no VAE of its own: the --vae file fills this one (load_vae_into)
        vae = AutoencoderKL(**arch.vae)
        vae.to(dtype).eval()
    text = _build(_text_model_factory(arch), _convert_text(state, arch), "text encoder", path.name, dtype)
    produced = set(_model_ldm_keys(unet, vae, text, arch))
    extras = {k: v for k, v in state.items() if k not in produced and not k.startswith("model_ema.")}
    v_meta = metadata.get("dreamcurate.v_parameterization") == "true"
    return unet, vae, text, arch, extras, ema_present, v_meta, None


def _plain_config(config: Any) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if not k.startswith("_")
    }


def _load_diffusers_folder(folder: Path, dtype: torch.dtype) -> tuple[Any, ...]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from trainer.models.sdxl_io import is_sdxl_folder, load_sdxl_folder

    if is_sdxl_folder(folder):
        return load_sdxl_folder(folder, dtype)
    if (
        not (folder / "unet").is_dir()
        or not (folder / "text_encoder").is_dir()
        or not (folder / "vae").is_dir()
    ):
        raise ModelError(f"{folder}: not a diffusers model folder (needs unet/, vae/ and text_encoder/)")
    try:
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", local_files_only=True, torch_dtype=dtype
        )
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True, torch_dtype=dtype)
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: cannot load the diffusers folder ({exc})") from exc
    width = text.config.hidden_size
    if unet.config.cross_attention_dim != width or unet.config.addition_embed_type is not None:
        raise ModelError(
            f"{folder}: not an SD 1.x / 2.x model (cross-attention {unet.config.cross_attention_dim})"
        )
    family = "sd2" if text.config.hidden_act == "gelu" else "sd1"
    text_cfg = {k: getattr(text.config, k) for k in _text_keys()}
    layers = text_cfg["num_hidden_layers"] + (1 if family == "sd2" else 0)
    arch = Architecture(family, _plain_config(unet.config), _plain_config(vae.config), text_cfg, layers)
    v_pred = False
    scheduler_cfg = folder / "scheduler" / "scheduler_config.json"
    if scheduler_cfg.is_file():
        v_pred = json.loads(scheduler_cfg.read_text()).get("prediction_type") == "v_prediction"
    return unet.eval(), vae.eval(), text.eval(), arch, {}, False, v_pred, None


def _text_keys() -> tuple[str, ...]:
    return (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "max_position_embeddings",
        "hidden_act",
        "projection_dim",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    )


def load_vae_into(model: SDModel, vae_path: Path) -> None:
    """Replace ``model.vae``'s weights by a separate VAE file (LDM or diffusers keys); shapes must fit."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    state, _ = read_state_dict(Path(vae_path))
    state = {k: v for k, v in state.items() if hasattr(v, "shape")}
    if any(k.startswith(("lora_", "cond_stage_model.", "conditioner.")) for k in state) and not any(
        k.startswith(("first_stage_model.", "vae.")) for k in state
    ):
        raise ModelError(f"{Path(vae_path).name}: not a VAE file")
    if not any(".down_blocks." in k or ".down." in k for k in state):
        raise ModelError(f"{Path(vae_path).name}: not a VAE file (no encoder blocks)")
    diffusers_sd = state if any(k.startswith("encoder.down_blocks.") for k in state) else None
    if diffusers_sd is None:
        diffusers_sd = convert_ldm_vae_checkpoint(state, model.architecture.vae)
    expected = model.vae.state_dict()
    for key, tensor in expected.items():
        if key not in diffusers_sd:
            raise ModelError(f"{Path(vae_path).name}: the VAE does not fit this model (no {key})")
        if tuple(diffusers_sd[key].shape) != tuple(tensor.shape):
            raise ModelError(
                f"{Path(vae_path).name}: the VAE does not fit this model ({key} is {tuple(diffusers_sd[key].shape)}, "
                f"the model needs {tuple(tensor.shape)}; a VAE of another family?)"
            )
    dtype = next(model.vae.parameters()).dtype
    model.vae.load_state_dict({k: diffusers_sd[k].to(dtype) for k in expected}, strict=True)
    model.ldm_extras = {k: v for k, v in model.ldm_extras.items() if not k.startswith("first_stage_model.")}


def load_model(
    path: Path | str,
    vae: Path | str | None = None,
    v_parameterization: bool = False,
    dtype: torch.dtype | None = None,
    use_ema: bool = False,
) -> SDModel:
    """Load an SD 1.x / 2.x base model from a single file or a diffusers folder, offline.

    ``v_parameterization``: the model predicts v (SD 2.x 768-v models); weights do not tell, the user does (our own
    files record it). ``use_ema``: take the UNet's EMA weights when the file has them. Raises ModelError with one line.
    """
    import torch

    from trainer.models.tokenizer import load_clip_tokenizer

    path = Path(path)
    dtype = dtype or torch.float32
    if path.is_dir():
        parts = _load_diffusers_folder(path, dtype)
    else:
        parts = _load_single_file(path, use_ema, dtype, vae is not None)
    unet, vae_module, text, arch, extras, ema_present, v_recorded, text2 = parts
    v_pred = bool(v_parameterization or v_recorded)
    # ComfyUI's "ztsnr" marker tensor (a key the modules do not hold, so it sits in the extras)
    zero_snr = arch.family == "sdxl" and ZTSNR_MARKER in extras
    model = SDModel(
        unet=unet,
        vae=vae_module,
        text_encoder=text,
        tokenizer=load_clip_tokenizer(arch.family),
        noise_scheduler=make_noise_scheduler(v_pred, zero_snr),
        family=arch.family,
        v_parameterization=v_pred,
        architecture=arch,
        source=path,
        ldm_extras=extras,
        ema_in_source=ema_present,
        ema_used=use_ema,
        text_encoder_2=text2,
        tokenizer_2=load_clip_tokenizer("sd2") if text2 is not None else None,
    )
    if vae is not None:
        load_vae_into(model, Path(vae))
    return model


def _model_ldm_keys(unet: Any, vae: Any, text: Any, arch: Architecture, text2: Any = None) -> dict[str, Any]:
    if arch.family == "sdxl":
        from trainer.models.sdxl_io import sdxl_module_keys

        return sdxl_module_keys(unet, vae, text, text2)
    out = ldm_keys.unet_to_ldm(unet.state_dict(), unet.config)
    out.update(ldm_keys.vae_to_ldm(vae.state_dict(), vae.config))
    text_sd = text.state_dict()
    out.update(ldm_keys.clip_to_ldm(text_sd) if arch.family == "sd1" else ldm_keys.open_clip_to_ldm(text_sd))
    return out


def _standard_fillers(model: SDModel, state: dict[str, Any]) -> dict[str, Any]:
    """Keys the standard layout has but the diffusers modules do not, when the source did not provide them."""
    import math

    import torch

    arch, fill = model.architecture, {}
    if arch.family == "sdxl":
        from trainer.models.sdxl_io import sdxl_fillers

        zero_snr = bool(model.noise_scheduler.config.get("rescale_betas_zero_snr", False))
        return sdxl_fillers(arch, model.v_parameterization, zero_snr)
    if arch.family == "sd1":
        positions = arch.text_encoder["max_position_embeddings"]
        fill[SD1_TEXT_PREFIX + "embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
        return fill
    width, used = arch.text_encoder["hidden_size"], arch.text_encoder["num_hidden_layers"]
    last = f"{SD2_TEXT_PREFIX}transformer.resblocks.{used - 1}."
    for block in range(used, arch.ldm_text_layers):  # SD 2 never runs its last block; keep its slot filled
        for key in [k for k in state if k.startswith(last)]:
            fill[key.replace(last, f"{SD2_TEXT_PREFIX}transformer.resblocks.{block}.")] = state[key].clone()
    fill[SD2_TEXT_PREFIX + "text_projection"] = torch.eye(width)
    fill[SD2_TEXT_PREFIX + "logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return fill


def ldm_state_dict(model: SDModel, precision: str = "float") -> dict[str, Any]:
    """The model as one LDM state dict (what ``save_single_file`` writes), cast to ``precision``."""
    dtype = _torch_dtype(precision)
    state = _model_ldm_keys(
        model.unet, model.vae, model.text_encoder, model.architecture, model.text_encoder_2
    )
    for key, value in {**_standard_fillers(model, state), **model.ldm_extras}.items():
        state.setdefault(key, value)
    return {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in state.items()
    }


def _metadata(model: SDModel, precision: str, extra: dict[str, str] | None) -> dict[str, str]:
    spec = (
        f"{model.family}-v" if model.family in ("sd2", "sdxl") and model.v_parameterization else model.family
    )
    meta = dict(extra or {})
    bad = [k for k, v in meta.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ModelError(f"metadata must map strings to strings (bad keys: {bad[:3]})")
    meta.setdefault("modelspec.sai_model_spec", "1.0.0")
    meta.setdefault("modelspec.architecture", MODELSPEC_ARCH[spec])
    if model.family == "sdxl":
        from trainer.models.sdxl_io import KOHYA_BASE_VERSION

        meta["ss_base_model_version"] = KOHYA_BASE_VERSION  # what Kohya's tools read to pick SDXL
        if model.v_parameterization:
            meta.setdefault("modelspec.prediction_type", "v")
    meta.update(
        {
            ARCH_METADATA_KEY: model.architecture.to_json(),
            "dreamcurate.family": model.family,
            "dreamcurate.v_parameterization": "true" if model.v_parameterization else "false",
            "dreamcurate.precision": precision,
            "format": "pt",
        }
    )
    return meta


#: what ``--force`` may replace: a model file (never a folder or another file of the user's) ...
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt")
#: ... or a diffusers model folder, recognised by the file every one of them holds
MODEL_INDEX = "model_index.json"


def check_output_target(path: Path | str, layout: str, overwrite: bool) -> None:
    """Raise :class:`ModelError` unless a model may be written at ``path`` (``layout``: "single-file" or
    "diffusers"). A missing path is fine; an existing one only with ``overwrite``, and even then only a model of the
    same layout: a ``.safetensors`` / ``.ckpt`` file, or a folder that holds ``model_index.json``. Never a folder of
    the user's own files, a text file, or a symbolic link. Cheap: callers use it before loading any weights."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise ModelError(f"{path} already exists; use --force to replace it")
    if path.is_symlink():
        raise ModelError(f"refusing to replace {path}: it is a symbolic link; pick another output")
    if layout == "diffusers":
        if not path.is_dir():
            raise ModelError(f"refusing to replace {path}: it is a file, not a diffusers model folder")
        if not (path / MODEL_INDEX).is_file():
            raise ModelError(
                f"refusing to replace {path}: it is not a diffusers model folder (no {MODEL_INDEX}); "
                "pick another output or empty it yourself"
            )
        return
    if not path.is_file():
        raise ModelError(f"refusing to replace {path}: it is a folder, not a model file")
    if path.suffix.lower() not in MODEL_FILE_SUFFIXES:
        raise ModelError(f"refusing to replace {path}: it is not a model file (.safetensors or .ckpt)")


def _fsync_replace(tmp: str, path: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_single_file(
    model: SDModel,
    path: Path | str,
    precision: str = "float",
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a single-file LDM ``.safetensors`` (WebUI, ComfyUI, Kohya); atomic (temp + rename).

    ``precision``: float, fp16 or bf16. ``metadata``: training settings, strings only (stored in the header).
    ``overwrite``: replace an existing model file at ``path`` (anything else is refused, see
    :func:`check_output_target`).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path.name}: single files are written as .safetensors")
    check_output_target(path, "single-file", overwrite)
    state = ldm_state_dict(model, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private hidden folder, not a file: safetensors (0.8) writes through a temporary of its own (``.tmpXXXXXX``)
    # beside the name it is given, and a run killed mid-save must leave only names that start with ours.
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = folder / path.name
    try:
        save_file(state, str(tmp), metadata=_metadata(model, precision, metadata))
        _fsync_replace(str(tmp), path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def _model_index(model: SDModel) -> dict[str, Any]:
    import diffusers

    if model.family == "sdxl":
        from trainer.models.sdxl_io import sdxl_model_index

        return sdxl_model_index()

    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
    }


#: transformers 4.x (Kohya's pin) names CLIP text-model tensors ``text_model.<...>`` and loads none of the
#: prefix-less names transformers 5 writes (starting silently from random weights); transformers 5 reads both.
LEGACY_TEXT_PREFIX = "text_model."


def legacy_text_keys(state: dict[str, Any]) -> dict[str, Any]:
    """A CLIP text encoder's state dict under transformers' legacy key names (``text_model.`` prefix)."""
    return {k if k.startswith(LEGACY_TEXT_PREFIX) else LEGACY_TEXT_PREFIX + k: v for k, v in state.items()}


def _write_component(
    module: Any, folder: Path, weights_name: str, dtype: Any, legacy_text: bool = False
) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    if hasattr(module, "save_config"):
        module.save_config(folder)  # diffusers
    else:
        module.config.save_pretrained(folder)  # transformers
    state = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v).contiguous()
        for k, v in module.state_dict().items()
    }
    if legacy_text:
        state = legacy_text_keys(state)
    save_file(state, str(folder / weights_name), metadata={"format": "pt"})


def save_diffusers(
    model: SDModel, folder: Path | str, precision: str = "float", overwrite: bool = False
) -> Path:
    """Write ``model`` as a diffusers folder (``StableDiffusionPipeline.from_pretrained`` loads it); the folder
    appears complete or not at all (built beside it, then renamed). ``overwrite``: replace an existing diffusers
    model folder at ``folder`` (a folder without ``model_index.json`` is refused, see :func:`check_output_target`).
    """
    folder = Path(folder)
    check_output_target(folder, "diffusers", overwrite)
    dtype = _torch_dtype(precision)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # temporaries are hidden, unique and end in .tmp, so a crashed run's leftovers are recognisably ours
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _write_component(model.unet, tmp / "unet", "diffusion_pytorch_model.safetensors", dtype)
        _write_component(model.vae, tmp / "vae", "diffusion_pytorch_model.safetensors", dtype)
        _write_component(
            model.text_encoder, tmp / "text_encoder", "model.safetensors", dtype, legacy_text=True
        )
        model.tokenizer.save_pretrained(tmp / "tokenizer")
        if model.text_encoder_2 is not None:
            _write_component(model.text_encoder_2, tmp / "text_encoder_2", "model.safetensors", dtype)
            model.tokenizer_2.save_pretrained(tmp / "tokenizer_2")
        model.noise_scheduler.save_config(tmp / "scheduler")
        (tmp / MODEL_INDEX).write_text(json.dumps(_model_index(model), indent=2))
        _swap_in_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _swap_in_folder(new: Path, folder: Path) -> None:
    """Rename ``new`` to ``folder``; an existing ``folder`` (already checked to be a diffusers model) moves into a
    fresh hidden holder first and is deleted only after the rename, so no name of the user's is ever removed."""
    if not folder.exists():
        new.rename(folder)
        return
    holder = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", suffix=".tmp", dir=folder.parent))
    folder.rename(holder / folder.name)
    try:
        new.rename(folder)
    except BaseException:
        (holder / folder.name).rename(folder)  # put the old model back
        holder.rmdir()
        raise
    shutil.rmtree(holder, ignore_errors=True)
