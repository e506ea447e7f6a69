"""The training loss, as Kohya's ``conditional_loss``: l2 (MSE), l1, or the pseudo-Huber losses with a threshold
``huber_c`` that can follow the timestep (``huber_schedule``), then Min-SNR weighting and the prior loss weight.

Example::

    per_image = diffusion_loss(prediction, target, timesteps, scheduler, config)   # (B,)
"""

from __future__ import annotations

import math
from typing import Any

from curator.settings.config import TrainConfig


def huber_threshold(config: TrainConfig, timesteps: Any, scheduler: Any) -> Any:
    """huber_c per image: constant, decaying exponentially with the timestep, or following the noise level
    ((1 - c) / (1 + sigma)^2 + c, sigma = sqrt((1 - alpha_bar) / alpha_bar))."""
    import torch

    c = config.huber_c
    if config.huber_schedule == "exponential":
        alpha = -math.log(c) / scheduler.config.num_train_timesteps
        return torch.exp(-alpha * timesteps.float()) * config.huber_scale
    if config.huber_schedule == "snr":
        alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        return (1 - c) / (1 + sigmas) ** 2 + c
    return torch.full(timesteps.shape, c * config.huber_scale, device=timesteps.device)


def elementwise_loss(prediction: Any, target: Any, config: TrainConfig, huber_c: Any = None) -> Any:
    """The loss of every element (float32), before any mean."""
    import torch
    import torch.nn.functional as F

    if config.loss_type == "l2":
        return F.mse_loss(prediction, target, reduction="none")
    if config.loss_type == "l1":
        return F.l1_loss(prediction, target, reduction="none")
    c = huber_c.view(-1, *([1] * (prediction.ndim - 1)))
    smooth = 2 * (torch.sqrt((prediction - target) ** 2 + c**2) - c)
    return smooth * c if config.loss_type == "huber" else smooth


def diffusion_loss(prediction: Any, target: Any, timesteps: Any, scheduler: Any, config: TrainConfig) -> Any:
    """The loss of each image (mean over channels and pixels) for ``loss_type``."""
    huber_c = None
    if config.loss_type in ("huber", "smooth_l1"):
        huber_c = huber_threshold(config, timesteps, scheduler)
    return elementwise_loss(prediction.float(), target.float(), config, huber_c).mean(dim=[1, 2, 3])


def min_snr_weights(scheduler: Any, timesteps: Any, gamma: float, v_prediction: bool) -> Any:
    """Min-SNR-gamma loss weights (Hang et al. 2023) via diffusers' compute_snr. Kohya takes the SNR from the
    model's schedule even with zero_terminal_snr (its SNR table is made before the rescale), so pass that one: the
    rescaled schedule's last SNR is 0 and its epsilon weight would be 0/0."""
    import torch
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1) if v_prediction else clipped / snr
