"""The forward diffusion of training, as Kohya's train_db.py runs it: the noise schedule (optionally rescaled to zero
terminal SNR), the noise (with noise offset), the timesteps (between min_timestep and max_timestep).

Example::

    scheduler = training_scheduler(model.noise_scheduler, config.zero_terminal_snr)
    noise = sample_noise(latents, config)
    timesteps = sample_timesteps(config, latents.shape[0], latents.device)
"""

from __future__ import annotations

import copy
from typing import Any

from curator.settings.config import TrainConfig


def training_scheduler(scheduler: Any, zero_terminal_snr: bool) -> Any:
    """The schedule that noises the latents: the model's, or a copy rescaled to zero SNR at the last timestep (Lin et
    al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed"; diffusers' implementation of it)."""
    if not zero_terminal_snr:
        return scheduler
    import torch
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

    rescaled = copy.deepcopy(scheduler)
    rescaled.betas = rescale_zero_terminal_snr(scheduler.betas)
    rescaled.alphas = 1.0 - rescaled.betas
    rescaled.alphas_cumprod = torch.cumprod(rescaled.alphas, dim=0)
    return rescaled


def sample_noise(latents: Any, config: TrainConfig, generator: Any = None) -> Any:
    """Gaussian noise like ``latents``, plus the per-channel noise offset when it is set."""
    import torch

    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if config.noise_offset:
        offset = torch.randn(
            (latents.shape[0], latents.shape[1], 1, 1), generator=generator, device=latents.device
        )
        noise = noise + config.noise_offset * offset.to(latents.dtype)
    return noise


def sample_timesteps(config: TrainConfig, count: int, device: Any, generator: Any = None) -> Any:
    """``count`` timesteps drawn uniformly from [min_timestep, max_timestep) (all max_timestep when they are equal,
    as Kohya does)."""
    import torch

    low, high = config.min_timestep, config.max_timestep
    if low >= high:
        return torch.full((count,), high, dtype=torch.long, device=device)
    return torch.randint(low, high, (count,), generator=generator, device="cpu").to(device)
