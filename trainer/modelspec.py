"""What a saved checkpoint says about itself, in the vocabularies other tools read: Kohya's ``ss_base_model_version``
(``sd_v1``, ``sd_v2``, ``sd_v2_v``) and Stability AI's model spec (``modelspec.*``: architecture, prediction type,
resolution...), as sd-scripts writes them for an SD 1.x / 2.x checkpoint.

Example::

    modelspec_metadata(config, family="sd2", v_prediction=True)["modelspec.architecture"]  # stable-diffusion-v2-768-v
"""

from __future__ import annotations

import datetime

from curator.settings.config import TrainConfig

#: the implementation Kohya names for an SD single-file checkpoint, and for a diffusers folder
_IMPLEMENTATION = {
    "safetensors": "https://github.com/Stability-AI/generative-models",
    "diffusers": "diffusers",
}


def base_model_version(family: str, v_prediction: bool) -> str:
    """Kohya's ``ss_base_model_version``: ``sd`` + ``_v1`` / ``_v2`` + ``_v`` for v-prediction."""
    version = "sd_v2" if family == "sd2" else "sd_v1"
    return version + ("_v" if v_prediction else "")


def architecture(family: str, v_prediction: bool) -> str:
    """The model spec's architecture id."""
    if family == "sd2":
        return "stable-diffusion-v2-768-v" if v_prediction else "stable-diffusion-v2-512"
    return "stable-diffusion-v1"


def modelspec_metadata(config: TrainConfig, family: str, v_prediction: bool) -> dict[str, str]:
    """The ``modelspec.*`` fields of a checkpoint trained with ``config``."""
    now = datetime.datetime.now().replace(microsecond=0)
    metadata = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": architecture(family, v_prediction),
        "modelspec.implementation": _IMPLEMENTATION.get(config.save_model_as, "diffusers"),
        "modelspec.title": config.output_name,
        "modelspec.resolution": f"{config.resolution}x{config.resolution}",
        "modelspec.prediction_type": "v" if v_prediction else "epsilon",
        "modelspec.date": now.isoformat(),
    }
    if (config.min_timestep, config.max_timestep) != (0, 1000):
        metadata["modelspec.timestep_range"] = f"{config.min_timestep},{config.max_timestep}"
    if config.clip_skip > 1:
        metadata["modelspec.encoder_layer"] = str(config.clip_skip)
    return metadata
