"""Kohya's full_fp16 / full_bf16: the trained weights themselves in half precision (not only the autocast compute).

Example::

    dtype = full_precision_dtype(config, accelerator)     # None: float32 weights
"""

from __future__ import annotations

from typing import Any

from curator.settings.config import TrainConfig


def full_precision_dtype(config: TrainConfig, accelerator: Any) -> Any:
    """torch.float16 / torch.bfloat16 when full_fp16 / full_bf16 applies (fp16 needs the GPU: on a CPU the run falls
    back to float32 with a notice from make_accelerator), else None."""
    import torch

    if config.full_bf16 and accelerator.mixed_precision == "bf16":
        return torch.bfloat16
    if config.full_fp16 and accelerator.mixed_precision == "fp16":
        return torch.float16
    return None


def allow_fp16_gradients(scaler: Any) -> None:
    """Let the fp16 gradient scaler unscale fp16 gradients (torch refuses by default: with full_fp16 every gradient
    is fp16; Kohya patches the scaler the same way)."""
    unscale = scaler._unscale_grads_

    def unscale_allowing_fp16(optimizer: Any, inv_scale: Any, found_inf: Any, allow_fp16: bool) -> Any:
        return unscale(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale_allowing_fp16
