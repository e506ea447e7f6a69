"""What a model file is, without building it: family, parameters per component, precision, EMA, metadata.

For ``.safetensors`` only the header is read (instant, even for a 4 GB file, and no torch import); ``.ckpt`` files
are loaded safely; diffusers folders are read from their configs and weight headers.

Example::

    info = inspect_model(Path("v1-5-pruned-emaonly.safetensors"))
    info["family"], info["parameters"]["unet"]     # ("sd1", 859520964)
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from curator.plan.modelfile import (
    COMPONENT_PREFIXES,
    DTYPE_NAMES,
    ModelFileError,
    component_of,
    count_parameters,
    folder_component,
    precision_name,
)
from trainer.models.errors import ModelError
from trainer.models.files import check_base_model, has_ema, read_shapes

__all__ = ["COMPONENT_PREFIXES", "DTYPE_NAMES", "FAMILY_NAMES", "inspect_model"]
FAMILY_NAMES = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "Stable Diffusion XL"}
_WEIGHTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def _from_shapes(name: str, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str]) -> dict[str, Any]:
    family = check_base_model({k: SimpleNamespace(shape=v) for k, v in shapes.items()}, name)
    params = count_parameters(shapes, dtypes)
    weights = [k for k in shapes if component_of(k) in _WEIGHTS]
    return {
        "family": family,
        "parameters": params,
        "precision": precision_name(dtypes, weights),
        "ema": has_ema(shapes),
    }


def _folder_params(folder: Path, sub: str) -> tuple[int, str]:
    try:
        total, dtypes, _ = folder_component(folder, sub)
    except ModelFileError as exc:
        raise ModelError(str(exc)) from exc
    return total, "+".join(sorted(dtypes)) or "unknown"


def _from_folder(folder: Path) -> dict[str, Any]:
    try:
        text_cfg = json.loads((folder / "text_encoder" / "config.json").read_text())
        unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: not a diffusers model folder ({exc})") from exc
    sdxl = (folder / "text_encoder_2").is_dir()
    if not sdxl and (
        unet_cfg.get("cross_attention_dim") != text_cfg.get("hidden_size")
        or unet_cfg.get("addition_embed_type")
    ):
        raise ModelError(f"{folder}: not an SD 1.x / 2.x / SDXL model")
    params, precisions = {}, set()
    for sub in _WEIGHTS if sdxl else _WEIGHTS[:3]:
        params[sub], precision = _folder_params(folder, sub)
        precisions.add(precision)
    family = "sdxl" if sdxl else "sd2" if text_cfg.get("hidden_act") == "gelu" else "sd1"
    scheduler = folder / "scheduler" / "scheduler_config.json"
    v_pred = (
        scheduler.is_file() and json.loads(scheduler.read_text()).get("prediction_type") == "v_prediction"
    )
    return {
        "family": family,
        "parameters": params,
        "precision": "+".join(sorted(precisions)),
        "ema": False,
        "metadata": {},
        "v_parameterization": "true" if v_pred else "false",
    }


def inspect_model(path: Path) -> dict[str, Any]:
    """A JSON-ready description of a model file or diffusers folder; ModelError for what we would refuse to load."""
    path = Path(path)
    if path.is_dir():
        info = _from_folder(path)
        info["format"] = "diffusers"
    else:
        shapes, dtypes, metadata = read_shapes(path)
        info = _from_shapes(path.name, shapes, dtypes)
        info["format"] = (
            "safetensors" if path.suffix.lower() == ".safetensors" else "ckpt (loaded weights-only)"
        )
        info["metadata"] = metadata
        info["v_parameterization"] = _v_prediction(shapes, metadata)
    info["path"] = str(path)
    info["family_name"] = FAMILY_NAMES[info["family"]]
    params = info["parameters"]
    info["trains"] = {
        "unet": params.get("unet", 0),
        "text_encoder": params.get("text_encoder", 0),
        "text_encoder_2": params.get("text_encoder_2", 0),
        "frozen": {"vae": params.get("vae", 0)},
    }
    info["notes"] = _notes(info)
    return info


def _v_prediction(shapes: dict[str, Any], metadata: dict[str, str]) -> str:
    """What the file says about v-prediction: "true", "false" (our files) or "unknown"."""
    from trainer.models.sdxl_io import is_v_prediction

    if is_v_prediction(shapes, metadata):
        return "true"
    return metadata.get("dreamcurate.v_parameterization", "unknown")


def _notes(info: dict[str, Any]) -> list[str]:
    notes = []
    if info["ema"]:
        notes.append("EMA weights present: training starts from the non-EMA weights unless --use-ema")
    if info["family"] == "sd2" and info["v_parameterization"] == "unknown":
        notes.append(
            "SD 2.x 768 models predict v: pass --v-parameterization for them (512-base models do not)"
        )
    if info["family"] == "sdxl" and info["v_parameterization"] == "unknown":
        notes.append(
            "SDXL: derivatives (Pony, Illustrious) train as SDXL; v-prediction ones (NoobAI-style) without a "
            "v_pred marker need --v-parameterization"
        )
    if info["precision"] in ("fp16", "bf16"):
        notes.append(f"stored in {info['precision']}: loaded as float32 for training")
    return notes
