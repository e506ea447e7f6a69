"""What a base model file holds, read from its header only: family, parameters per component, precision.

No torch and no tensor data: a ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON
header naming every tensor's dtype, shape and byte range, which is all the plan needs (a 4 GB file reads in
milliseconds). Diffusers folders are read from their configs and the headers of their component files. ``.ckpt``
files need torch (pickle) to read: they raise :class:`ModelFileError`, and the plan falls back to its SD defaults.
The trainer's ``model info`` builds on the same functions.

Example::

    facts = read_model_facts(Path("v1-5-pruned-emaonly.safetensors"))
    facts.family, facts.unet_params        # ("sd1", 859520964)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
EMA_PREFIX = "model_ema."
#: SDXL's two text encoders (CLIP ViT-L, OpenCLIP bigG); the refiner holds only bigG, at embedders.0 in OpenCLIP form
SDXL_TEXT1_PREFIX = "conditioner.embedders.0.transformer."
SDXL_TEXT2_PREFIX = "conditioner.embedders.1."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."
COMPONENT_PREFIXES = {
    "unet": UNET_PREFIX,
    "vae": VAE_PREFIX,
    "text_encoder": TEXT_PREFIX,
    "text_encoder_2": SDXL_TEXT2_PREFIX,
    "ema": EMA_PREFIX,
}
#: the plan's model name of each family
PLAN_MODELS = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}
DTYPE_NAMES = {"F32": "float", "F16": "fp16", "BF16": "bf16", "float32": "float", "float16": "fp16"}
#: dtypes of index buffers (CLIP's position_ids), not weights: never counted as parameters
INDEX_DTYPES = ("I64", "int64")
#: the first UNet convolution; its output channels are the UNet's base width (320 for SD 1.x / 2.x)
UNET_FIRST_CONV = UNET_PREFIX + "input_blocks.0.0.weight"


class ModelFileError(ValueError):
    """A model file this module cannot describe (a .ckpt, a truncated or foreign file), in one line."""


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """The tensor entries (name -> dtype, shape, data_offsets), the metadata and the header's length in bytes of a
    ``.safetensors`` file; reads only the header. :class:`ModelFileError` for a file that is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size <= 0 or size > path.stat().st_size - 8:
                raise ValueError("header length past the end of the file")
            if size > MAX_HEADER_BYTES:  # the format's own limit; more is not a model's header
                raise ValueError(f"header of {size:,} bytes, more than the format allows")
            header = json.loads(handle.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        _check_header(header, metadata)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: a header of deeply nested brackets
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ModelFileError(
            f"{path.name}: cannot read it as safetensors, it is truncated or corrupt ({reason})"
        ) from exc
    return header, dict(metadata), size


#: safetensors refuses headers larger than this itself
MAX_HEADER_BYTES = 100_000_000


def _check_header(header: dict[str, Any], metadata: Any) -> None:
    """ValueError unless the header has the format's shape: string metadata, and per tensor a dtype, a shape of
    sizes and two data offsets."""
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("its metadata is not text (the format allows only strings there)")
    for name, info in header.items():
        ok = (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and isinstance(info.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in info["shape"])
            and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(n, int) and n >= 0 for n in info["data_offsets"])
        )
        if not ok:
            raise ValueError(f"the entry of tensor {name[:60]!r} is malformed")


def component_of(key: str) -> str:
    """The component of an LDM checkpoint key: unet, vae, text_encoder, text_encoder_2 (SDXL's second), ema or
    other."""
    if key.startswith(SDXL_TEXT1_PREFIX):
        return "text_encoder"
    for name, prefix in COMPONENT_PREFIXES.items():
        if key.startswith(prefix):
            return name
    return "other"


def count_parameters(shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str]) -> dict[str, int]:
    """Parameters per component (see :func:`component_of`); index buffers are not parameters."""
    params: dict[str, int] = {}
    for key, shape in shapes.items():
        if dtypes.get(key, "").removeprefix("torch.") in INDEX_DTYPES:
            continue
        name = component_of(key)
        params[name] = params.get(name, 0) + math.prod(shape)
    return params


def precision_name(dtypes: dict[str, str], keys: list[str]) -> str:
    """The storage precision of ``keys`` in words ("float", "fp16", "bf16", or several joined with "+")."""
    names = {DTYPE_NAMES.get(dtypes[k].removeprefix("torch."), dtypes[k]) for k in keys}
    names.difference_update(INDEX_DTYPES)
    return "+".join(sorted(names)) or "unknown"


@dataclass(frozen=True)
class ModelFacts:
    """What the plan needs to know about a base model.

    Example::

        facts = ModelFacts("sd1", {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480})
        facts.total_params      # 1_066_235_307
    """

    family: str  # sd1, sd2 or sdxl
    parameters: dict[str, int] = field(
        default_factory=dict
    )  # unet, vae, text_encoder (ema, other if present)
    dtype: str = "float"  # storage precision of the weights
    unet_width: int = 320  # output channels of the UNet's first convolution (its base width)
    header_bytes: int = 0  # the safetensors header (8 + JSON), about the same in a checkpoint saved from it
    path: str = ""  # where the facts came from

    @property
    def unet_params(self) -> int:
        """Parameters of the UNet."""
        return self.parameters.get("unet", 0)

    @property
    def text_encoder_params(self) -> int:
        """Parameters of the text encoder."""
        return self.parameters.get("text_encoder", 0)

    @property
    def text_encoder_2_params(self) -> int:
        """Parameters of SDXL's second text encoder (0 for SD 1.x / 2.x)."""
        return self.parameters.get("text_encoder_2", 0)

    @property
    def total_params(self) -> int:
        """Parameters of a saved model: UNet, VAE and text encoder(s) (no EMA copy)."""
        return sum(self.parameters.get(k, 0) for k in ("unet", "vae", "text_encoder", "text_encoder_2"))

    @property
    def plan_model(self) -> str:
        """The plan's model name for this family: sd15, sd2 or sdxl."""
        return PLAN_MODELS.get(self.family, "sd15")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "family": self.family,
            "parameters": dict(self.parameters),
            "dtype": self.dtype,
            "unet_width": self.unet_width,
            "path": self.path,
        }


def _family(keys: Any) -> str:
    if any(k.startswith(SDXL_REFINER_PREFIX) for k in keys):
        raise ModelFileError("the SDXL refiner is not a base model to fine-tune")
    if any(k.startswith(SDXL_TEXT2_PREFIX) for k in keys):
        return "sdxl"
    if any(k.startswith(SD2_TEXT_PREFIX) for k in keys):
        return "sd2"
    if any(k.startswith(SD1_TEXT_PREFIX) for k in keys):
        return "sd1"
    raise ModelFileError("no SD 1.x / 2.x / SDXL text encoder in the file")


def _from_file(path: Path) -> ModelFacts:
    if path.suffix.lower() != ".safetensors":
        raise ModelFileError(f"{path.name}: only .safetensors headers are read without torch")
    header, _, size = read_safetensors_header(path)
    try:
        shapes = {k: tuple(v["shape"]) for k, v in header.items()}
        dtypes = {k: str(v["dtype"]) for k, v in header.items()}
    except (TypeError, KeyError) as exc:
        raise ModelFileError(f"{path.name}: malformed safetensors header ({exc})") from exc
    if UNET_FIRST_CONV not in shapes:
        raise ModelFileError(f"{path.name}: no SD UNet in the file")
    weights = [k for k in shapes if component_of(k) in ("unet", "vae", "text_encoder", "text_encoder_2")]
    return ModelFacts(
        family=_family(shapes),
        parameters=count_parameters(shapes, dtypes),
        dtype=precision_name(dtypes, weights),
        unet_width=int(shapes[UNET_FIRST_CONV][0]),
        header_bytes=8 + size,
        path=str(path),
    )


def folder_component(folder: Path, sub: str) -> tuple[int, set[str], dict[str, tuple[int, ...]]]:
    """Parameters, precisions and shapes of one diffusers component folder (its .safetensors headers)."""
    total, dtypes, shapes = 0, set(), {}
    for weights in sorted((Path(folder) / sub).glob("*.safetensors")):
        header, _, _ = read_safetensors_header(weights)
        for key, info in header.items():
            shapes[key] = tuple(info["shape"])
            total += math.prod(info["shape"])
            dtypes.add(DTYPE_NAMES.get(info["dtype"], info["dtype"]))
    return total, dtypes, shapes


def _from_folder(folder: Path) -> ModelFacts:
    try:
        text_cfg = json.loads((folder / "text_encoder" / "config.json").read_text())
        unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{folder}: not a diffusers model folder ({exc})") from exc
    params, precisions = {}, set()
    sdxl = (folder / "text_encoder_2").is_dir()
    for sub in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if sdxl else ()):
        params[sub], dtypes, _ = folder_component(folder, sub)
        precisions |= dtypes
    widths = unet_cfg.get("block_out_channels") or [320]
    return ModelFacts(
        family="sdxl" if sdxl else "sd2" if text_cfg.get("hidden_act") == "gelu" else "sd1",
        parameters=params,
        dtype="+".join(sorted(precisions)) or "unknown",
        unet_width=int(widths[0]),
        path=str(folder),
    )


def read_model_facts(path: Path) -> ModelFacts:
    """The :class:`ModelFacts` of a ``.safetensors`` SD 1.x / 2.x / SDXL file or a diffusers folder, from headers and
    configs only; :class:`ModelFileError` (one line) for anything else."""
    path = Path(path)
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    return _from_file(path)


def facts_for_plan(path: str | Path | None) -> tuple[ModelFacts | None, str | None]:
    """The facts of the base model at ``path`` for a plan, or (None, a note saying why the plan uses the SD 1.5
    defaults instead). No path: (None, None)."""
    if not path:
        return None, None
    try:
        return read_model_facts(Path(path)), None
    except (ModelFileError, OSError, ValueError, TypeError, KeyError) as exc:
        return None, f"base model not read ({exc}); memory and checkpoint sizes assume SD 1.5"
