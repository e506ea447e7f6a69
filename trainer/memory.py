"""Will the run fit? The plan's memory estimate (``curator.plan.estimates``, one formula for the plan and here),
taken with the loaded model's real sizes, against the memory of the device that trains, before any step.

Example::

    check_fits(config, model, accelerator.device, train_text_encoder=True)   # ConfigError when it cannot fit
"""

from __future__ import annotations

import os
from typing import Any

from curator.plan.estimates import VramInputs, estimate_vram
from curator.settings.config import ConfigError, TrainConfig

#: how far the estimate may pass the device's memory before the run is refused (the estimate's own error)
ESTIMATE_MARGIN = 0.25


def available_gb(device: Any) -> float | None:
    """Total memory of ``device`` in GB: the GPU's, or the machine's RAM for a CPU; None when unknown."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory) / 1e9
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def estimate_gb(config: TrainConfig, model: Any, mixed_precision: str, train_text_encoder: bool) -> float:
    """The plan's estimate of the run's peak memory for this model and these settings."""
    inputs = VramInputs(
        resolution=config.resolution,
        batch_size=config.train_batch_size,
        mixed_precision=mixed_precision,
        gradient_checkpointing=config.gradient_checkpointing,
        use_8bit_adam=config.optimizer_type == "AdamW8bit",
        train_text_encoder=train_text_encoder,
        unet_params=sum(p.numel() for p in model.unet.parameters()),
        te_params=sum(p.numel() for m in _text_encoders(model) for p in m.parameters()),
        unet_width=int(model.unet.config.block_out_channels[0]),
        model="sdxl" if getattr(model, "family", "sd1") == "sdxl" else "sd15",
        optimizer_type=config.optimizer_type,
        fused_backward_pass=config.fused_backward_pass,
        full_bf16=config.full_bf16,
        cache_text_encoder_outputs=config.cache_text_encoder_outputs,
    )
    return estimate_vram(inputs).total_gb


def _text_encoders(model: Any) -> list[Any]:
    return [m for m in (model.text_encoder, getattr(model, "text_encoder_2", None)) if m is not None]


def check_fits(
    config: TrainConfig, model: Any, device: Any, mixed_precision: str, train_text_encoder: bool
) -> None:
    """ConfigError, before any step, when the estimate is clearly more than the device's whole memory (such a run
    would swap or be killed hours in); the message gives the estimate and the settings that lower it."""
    total = available_gb(device)
    if total is None:
        return
    needed = estimate_gb(config, model, mixed_precision, train_text_encoder)
    if needed > total * (1 + ESTIMATE_MARGIN):
        raise ConfigError(
            f"resolution {config.resolution} with train_batch_size {config.train_batch_size} needs about "
            f"{needed:.1f} GB (the plan's estimate), more than the {total:.1f} GB of {getattr(device, 'type', device)}; "
            "lower resolution or train_batch_size, or turn on gradient_checkpointing"
        )
