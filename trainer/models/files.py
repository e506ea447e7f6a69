"""Reading model files safely and deciding what they are, before anything is built from them.

``.safetensors`` is read with safetensors; ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` only through
``torch.load(weights_only=True)``: a file that needs pickle to load could run code on this machine, so it is refused.
``check_base_model`` refuses what is not an SD 1.x / 2.x / SDXL base model (a LoRA, an embedding, the SDXL refiner,
a VAE alone, ...)
with a message that says what the file is and what to do instead.

Example::

    state, metadata = read_state_dict(Path("model.safetensors"))
    family = check_base_model(state)          # "sd1" | "sd2" | "sdxl", or ModelError
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from curator.plan.modelfile import EMA_PREFIX, ModelFileError, read_safetensors_header
from trainer.models.arch import SD1_TEXT_PREFIX, SD2_TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX
from trainer.models.errors import ModelError
from trainer.models.sdxl_io import check_sdxl, is_sdxl_keys

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
#: fewer EMA keys than this is bookkeeping (decay, num_updates), not EMA weights (diffusers uses the same bound)
EMA_MIN_KEYS = 100


def _read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for truncated and malformed files
        raise ModelError(
            f"{path.name}: cannot read it as safetensors, it is truncated or corrupt ({exc})"
        ) from exc
    return normalize_ldm_keys(state), dict(metadata)


def _ckpt_damage(path: Path) -> str:
    """What is wrong with a .ckpt torch could not read, in words (torch's own messages are error numbers and
    internals of its zip reader)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return f"the file cannot be opened ({exc.strerror or exc})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK"):  # torch's format since 1.6 is a zip archive; its directory sits at the end
        return (
            f"the file is truncated or corrupt: its zip archive is incomplete ({size:,} bytes; an interrupted "
            "download or copy ends like this), get the file again"
        )
    if head[:1] == b"\x80":  # a pickle protocol mark: torch's legacy format, cut short or damaged
        return f"the file is truncated or corrupt: its data stops early ({size:,} bytes), get the file again"
    return f"the file is truncated or corrupt, or not a PyTorch checkpoint at all ({size:,} bytes)"


#: what a torch checkpoint's archive may declare unpacked beyond twice its own size (torch stores tensors unpacked)
ZIP_SLACK_BYTES = 64 << 20


def check_archive_sizes(path: Path) -> None:
    """ModelError when ``path`` is a zip archive that declares far more unpacked bytes than it holds (a zip bomb):
    checked from its directory before torch unpacks anything."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip (torch's legacy format) or damaged: torch's reader says what is wrong
    size = path.stat().st_size
    if declared > 2 * size + ZIP_SLACK_BYTES:
        raise ModelError(
            f"{path.name}: refused, its archive declares {declared:,} bytes unpacked in a file of {size:,} bytes "
            "(a zip bomb?); a PyTorch checkpoint stores its tensors unpacked"
        )


def _read_pickle_container(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    import pickle

    import torch

    check_archive_sizes(path)
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:  # the weights-only unpickler met bytes that are not a pickle at all
            raise ModelError(f"{path.name}: cannot read it, {_ckpt_damage(path)}") from exc
        raise ModelError(
            f"{path.name}: refused, this file needs full pickle to load ({found.group(1)}), and unpickling runs "
            "arbitrary code from the file; use the .safetensors release or convert it with a tool you trust"
        ) from exc
    except Exception as exc:  # zip / stream errors of a damaged file; their text is torch's internals
        raise ModelError(f"{path.name}: cannot read it, {_ckpt_damage(path)}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"{path.name}: holds a {type(raw).__name__}, not a dictionary of weights")
    while isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    return normalize_ldm_keys(raw), {}


def read_state_dict(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensors and metadata of a single model file (nested ``state_dict`` unwrapped); ModelError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle_container(path)
    raise ModelError(
        f"{path.name}: unsupported file type {suffix!r} (use .safetensors, .ckpt or a diffusers folder)"
    )


def normalize_ldm_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Older SD 1.x files name the text encoder ``cond_stage_model.transformer.embeddings...`` (transformers before
    ``text_model`` existed); give them the standard ``cond_stage_model.transformer.text_model.`` form."""
    old = "cond_stage_model.transformer."
    if any(k.startswith(SD1_TEXT_PREFIX) for k in state) or not any(k.startswith(old) for k in state):
        return state
    return {(SD1_TEXT_PREFIX + k[len(old) :] if k.startswith(old) else k): v for k, v in state.items()}


def read_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str], dict[str, str]]:
    """Shapes, dtypes and metadata without loading tensor data (safetensors); other files are loaded."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        try:
            header, metadata, size = read_safetensors_header(path)
        except ModelFileError as exc:
            raise ModelError(str(exc)) from exc
        end = max((info["data_offsets"][1] for info in header.values()), default=0)
        if 8 + size + end > path.stat().st_size:
            raise ModelError(
                f"{path.name}: the file is truncated ({path.stat().st_size} bytes, header needs more)"
            )
        shapes = normalize_ldm_keys({k: tuple(v["shape"]) for k, v in header.items()})
        dtypes = normalize_ldm_keys({k: v["dtype"] for k, v in header.items()})
        return shapes, dtypes, metadata
    state, metadata = read_state_dict(path)
    tensors = {k: v for k, v in state.items() if hasattr(v, "shape")}
    return (
        {k: tuple(v.shape) for k, v in tensors.items()},
        {k: str(v.dtype) for k, v in tensors.items()},
        metadata,
    )


def _refuse_adapters(name: str, keys: set[str]) -> None:
    if any(k.startswith(("lora_unet_", "lora_te")) or ".lora_down." in k or ".lora_A." in k for k in keys):
        raise ModelError(
            f"{name}: this is a LoRA, not a base model; train on the base model it was made for (a full SD 1.x / "
            "2.x checkpoint) and apply the LoRA at inference"
        )
    if "emb_params" in keys or "string_to_param" in keys or "string_to_token" in keys:
        raise ModelError(
            f"{name}: this is a textual-inversion embedding, not a base model; give a full SD 1.x / 2.x checkpoint"
        )


def _refuse_other_families(name: str, state: dict[str, Any], keys: set[str]) -> None:
    if UNET_PREFIX + "input_blocks.0.0.weight" in keys:
        return
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        raise ModelError(f"{name}: this is a VAE alone; pass it with --vae next to a full base model")
    if any(k.startswith(("down_blocks.", "text_model.", "encoder.layers.")) for k in keys):
        raise ModelError(f"{name}: a single diffusers component; point at the whole diffusers folder instead")
    guess = "an unknown model"
    try:
        from diffusers.loaders.single_file_utils import infer_diffusers_model_type

        kind = infer_diffusers_model_type(state)
        if kind not in ("v1", "v2"):
            guess = f"'{kind}'"
    except Exception:  # naming the family is a courtesy; it must not hide the refusal
        pass
    raise ModelError(f"{name}: not a Stable Diffusion 1.x / 2.x checkpoint (it looks like {guess})")


def check_base_model(state: dict[str, Any], name: str = "model", vae_given: bool = False) -> str:
    """Refuse anything that is not an SD 1.x / 2.x / SDXL base model; returns the family, "sd1", "sd2" or "sdxl".

    ``vae_given``: a separate VAE file comes with it, so the checkpoint may lack its own."""
    keys = set(state)
    if not keys:
        raise ModelError(f"{name}: the file holds no tensors")
    _refuse_adapters(name, keys)
    if is_sdxl_keys(keys):
        return check_sdxl(state, name, vae_given)
    _refuse_other_families(name, state, keys)
    in_channels = state[UNET_PREFIX + "input_blocks.0.0.weight"].shape[1]
    if in_channels != 4:
        raise ModelError(
            f"{name}: the UNet takes {in_channels} input channels (an inpainting, depth or instruct model); "
            "dreamcurate trains text-to-image base models (4 channels)"
        )
    if SD1_TEXT_PREFIX + "embeddings.token_embedding.weight" in keys:
        family, width = "sd1", state[SD1_TEXT_PREFIX + "embeddings.token_embedding.weight"].shape[1]
    elif SD2_TEXT_PREFIX + "token_embedding.weight" in keys:
        family, width = "sd2", state[SD2_TEXT_PREFIX + "token_embedding.weight"].shape[1]
    else:
        raise ModelError(
            f"{name}: no text encoder in the file (a UNet-only checkpoint?); give a full SD model"
        )
    if not vae_given and not any(k.startswith(VAE_PREFIX) for k in keys):
        raise ModelError(f"{name}: no VAE in the file; give a full SD model (or add one with --vae)")
    context = next((v.shape[1] for k, v in sorted(state.items()) if k.endswith("attn2.to_k.weight")), width)
    if context != width:
        raise ModelError(
            f"{name}: UNet cross-attention width {context} does not match the text encoder's {width}"
        )
    return family


def ema_key(ldm_key: str) -> str:
    """LDM's flat EMA name of a UNet key: ``model.diffusion_model.a.0.b`` -> ``model_ema.diffusion_modela0b``."""
    return EMA_PREFIX + "".join(ldm_key.split(".")[1:])


def has_ema(keys: Any) -> bool:
    """Whether a checkpoint carries EMA weights of the UNet."""
    return sum(1 for k in keys if k.startswith(EMA_PREFIX)) > EMA_MIN_KEYS
