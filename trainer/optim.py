"""Optimizers and learning-rate schedules by Kohya's names, built as sd-scripts builds them (its defaults, its
``optimizer_args``, its refusals); the optional packages are named with their pyproject extra when missing.

Example::

    optimizer = make_optimizer(config, unet, text_encoder, notices)
    scheduler = make_lr_scheduler(config, optimizer, total_steps)
"""

from __future__ import annotations

from typing import Any

from curator.settings.config import ConfigError, TrainConfig, optimizer_kwargs

#: the pyproject extra of each optional optimizer package
_EXTRAS = {"bitsandbytes": "bnb", "lion_pytorch": "lion", "prodigyopt": "prodigy"}


def _require(module: str, optimizer_type: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS[module]
        raise ConfigError(
            f"optimizer_type {optimizer_type} needs {module}: pip install 'dreamcurate[{extra}]'"
        ) from exc


def uses_relative_step(config: TrainConfig) -> bool:
    """Adafactor finding its own step size (Kohya's default for Adafactor: relative_step=True; warmup_init implies
    it). The learning rate is then only Adafactor's initial one and the schedule is Adafactor's."""
    if config.optimizer_type.lower() != "adafactor":
        return False
    kwargs = optimizer_kwargs(config)
    return bool(kwargs.get("relative_step", True) or kwargs.get("warmup_init", False))


def param_groups(
    config: TrainConfig,
    unet: Any,
    text_encoder: Any | None,
    text_encoder_2: Any | None = None,
    sdxl: bool = False,
) -> list[dict[str, Any]]:
    """The UNet's trainable parameters (group 0), then each text encoder that trains (its own rate): SD's one, or
    SDXL's two at learning_rate_te1 / learning_rate_te2."""
    lr_unet = config.learning_rate
    lr_te = config.learning_rate if config.learning_rate_te is None else config.learning_rate_te
    if config.network_module:  # a LoRA: unet_lr / text_encoder_lr, as Kohya's train_network.py reads them
        from trainer.lora import training as lora_training

        lr_unet, lr_te = lora_training.learning_rates(config)
    rates: tuple[float, ...] = (lr_te,)
    if sdxl:
        from trainer.sdxl import text_learning_rates

        rates = text_learning_rates(config)
    groups = [{"params": [p for p in unet.parameters() if p.requires_grad], "lr": lr_unet}]
    for module, lr in zip((text_encoder, text_encoder_2), rates, strict=False):
        if module is not None:
            groups.append({"params": [p for p in module.parameters() if p.requires_grad], "lr": lr})
    return groups


def make_optimizer(
    config: TrainConfig,
    unet: Any,
    text_encoder: Any | None,
    notices: list[str],
    text_encoder_2: Any | None = None,
    sdxl: bool = False,
) -> Any:
    """The optimizer ``optimizer_type`` names over :func:`param_groups`, with ``optimizer_args``."""
    import torch

    name = config.optimizer_type.lower()
    groups = param_groups(config, unet, text_encoder, text_encoder_2, sdxl)
    kwargs = optimizer_kwargs(config)
    lr = config.learning_rate
    try:
        if name == "adamw":
            # On a CPU torch defaults to a per-tensor loop; the fused kernel updates every tensor in one pass (most of
            # our lead over a plain loop on the tiny model). On CUDA torch's default (foreach) stays: it is proven
            # with accelerate's fp16 gradient scaler.
            kwargs.setdefault("fused", not torch.cuda.is_available())
            return torch.optim.AdamW(groups, lr=lr, **kwargs)
        if name in ("sgdnesterov", "sgdnesterov8bit"):
            kwargs.setdefault("momentum", 0.9)  # Nesterov needs momentum; Kohya sets 0.9 when it is not given
            if name == "sgdnesterov":
                return torch.optim.SGD(groups, lr=lr, nesterov=True, **kwargs)
            return _require("bitsandbytes", config.optimizer_type).optim.SGD8bit(
                groups, lr=lr, nesterov=True, **kwargs
            )
        if name in ("adamw8bit", "lion8bit"):
            bnb = _require("bitsandbytes", config.optimizer_type)
            cls = bnb.optim.AdamW8bit if name == "adamw8bit" else bnb.optim.Lion8bit
            return cls(groups, lr=lr, **kwargs)
        if name == "lion":
            return _require("lion_pytorch", config.optimizer_type).Lion(groups, lr=lr, **kwargs)
        if name == "prodigy":
            if lr <= 0.1:
                notices.append(f"Prodigy adapts its step size: learning_rate is usually about 1.0, got {lr}")
            return _require("prodigyopt", config.optimizer_type).Prodigy(groups, lr=lr, **kwargs)
        if name == "adafactor":
            return _adafactor(config, groups, kwargs, notices)
    except TypeError as exc:  # an option the optimizer does not take
        raise ConfigError(f"optimizer_args for {config.optimizer_type}: {exc}") from exc
    raise ConfigError(f"optimizer_type {config.optimizer_type!r} is not supported")


def _adafactor(
    config: TrainConfig, groups: list[dict[str, Any]], kwargs: dict[str, Any], notices: list[str]
) -> Any:
    from transformers.optimization import Adafactor

    kwargs.setdefault("relative_step", True)
    if kwargs.get("warmup_init") and not kwargs["relative_step"]:
        kwargs["relative_step"] = (
            True  # Adafactor's warm-up is a relative-step feature (Kohya turns it on too)
        )
    if not kwargs["relative_step"]:
        return Adafactor(groups, lr=config.learning_rate, **kwargs)
    for group in groups:  # Adafactor computes its own rate; a given one is refused by transformers
        group.pop("lr")
    if config.learning_rate_te is not None and len(groups) > 1:
        notices.append("Adafactor with relative_step ignores learning_rate_te (one rate it finds itself)")
    return Adafactor(groups, lr=None, **kwargs)


def make_lr_scheduler(config: TrainConfig, optimizer: Any, total_steps: int) -> Any:
    """The learning-rate schedule, stepped once per optimizer step: diffusers' schedules by Kohya's names (with
    num_cycles for cosine_with_restarts and power for polynomial), Adafactor's own with a relative step."""
    if uses_relative_step(config):
        from transformers.optimization import AdafactorSchedule

        if config.lr_warmup_steps:
            raise ConfigError(
                "Adafactor with relative_step has its own warm-up (warmup_init): set lr_warmup_steps = 0"
            )
        return AdafactorSchedule(optimizer, config.learning_rate)
    if config.lr_scheduler == "adafactor":
        raise ConfigError("lr_scheduler adafactor needs Adafactor with relative_step=True (its default)")
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=max(1, total_steps),
        num_cycles=config.lr_scheduler_num_cycles,
        power=config.lr_scheduler_power,
    )
