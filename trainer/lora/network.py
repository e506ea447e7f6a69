"""LoRA adapters on our models through peft (the library diffusers itself uses), read and written as Kohya tensors.

peft's LoRA layer is Kohya's: ``lora_A`` is ``lora_down`` (a conv of the layer's kernel for convs), ``lora_B`` is
``lora_up`` (1x1 for convs), zero-initialised, scaled by ``alpha / rank``. So a layer's Kohya tensors are its peft
tensors under other names, and nothing is converted. One difference, said here once: Kohya's ``network_dropout``
drops the down projection's outputs, peft's ``lora_dropout`` the layer's inputs to it.

Example::

    layers = attach(model, config)                # base frozen, adapters trainable
    tensors = kohya_tensors(model.unet, model.text_encoder)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from curator.settings.config import ConfigError, TrainConfig
from trainer.lora.targets import Target, find_targets

ADAPTER = "default"


@dataclass(frozen=True)
class Layer:
    """One adapter to create: the target layer, its rank and its alpha."""

    target: Target
    rank: int
    alpha: float


def planned_layers(config: TrainConfig, unet: Any, text_encoder: Any) -> list[Layer]:
    """The adapters a config asks for (Kohya's: linears and 1x1 convs at network_dim / network_alpha, 3x3 convs at
    conv_dim / conv_alpha when conv_dim is set; the UNet unless text-encoder-only, the text encoder unless
    UNet-only)."""
    layers = []
    unet_part = None if config.network_train_text_encoder_only else unet
    te_part = None if config.network_train_unet_only else text_encoder
    for target in find_targets(unet_part, te_part, conv=config.conv_dim > 0):
        if target.is_conv3x3:
            layers.append(Layer(target, config.conv_dim, config.conv_alpha))
        else:
            layers.append(Layer(target, config.network_dim, config.network_alpha))
    return layers


def inject(module: Any, layers: list[Layer], dropout: float = 0.0) -> None:
    """Add peft LoRA adapters to ``module`` at ``layers`` (each its own rank and alpha); nothing else changes."""
    from peft import LoraConfig, inject_adapter_in_model

    if not layers:
        return
    exact = {re.escape(layer.target.path): layer for layer in layers}
    first = layers[0]
    config = LoraConfig(
        r=first.rank,
        lora_alpha=first.alpha,  # type: ignore[arg-type]  # typed int; peft scales by alpha / r, a float works
        lora_dropout=dropout,
        target_modules=[layer.target.path for layer in layers],
        rank_pattern={pattern: layer.rank for pattern, layer in exact.items()},
        alpha_pattern={pattern: layer.alpha for pattern, layer in exact.items()},
        init_lora_weights=True,
    )
    inject_adapter_in_model(config, module, adapter_name=ADAPTER)


def attach(model: Any, config: TrainConfig) -> list[Layer]:
    """Freeze the base model and add the config's adapters (trainable) to its UNet and text encoder; start them from
    ``network_weights`` when given. Returns the layers."""
    model.unet.requires_grad_(False)
    model.text_encoder.requires_grad_(False)
    layers = planned_layers(config, model.unet, model.text_encoder)
    inject(model.unet, [la for la in layers if la.target.part == "unet"], config.network_dropout)
    inject(model.text_encoder, [la for la in layers if la.target.part == "te"], config.network_dropout)
    if config.network_weights:
        from pathlib import Path

        from trainer.lora.files import read_lora

        tensors, _ = read_lora(Path(config.network_weights))
        load_kohya_tensors(model.unet, model.text_encoder, tensors, source=config.network_weights)
    for module in (model.unet, model.text_encoder):
        for param in adapter_parameters(module):
            param.requires_grad_(True)
    return layers


def adapter_parameters(module: Any) -> list[Any]:
    """The LoRA parameters of a module (peft's ``lora_A`` / ``lora_B``)."""
    return [p for name, p in module.named_parameters() if ".lora_A." in name or ".lora_B." in name]


def _adapted(root: Any, target: Target) -> Any | None:
    module = root.get_submodule(target.path)
    lora_a = getattr(module, "lora_A", None)
    return module if lora_a is not None and ADAPTER in lora_a else None


def kohya_tensors(unet: Any, text_encoder: Any) -> dict[str, Any]:
    """Every adapter of the two modules as Kohya tensors: ``NAME.lora_down.weight``, ``NAME.lora_up.weight`` and
    ``NAME.alpha`` (detached, on the CPU, float32)."""
    import torch

    tensors: dict[str, Any] = {}
    roots = {"unet": unet, "te": text_encoder}
    for target in find_targets(unet, text_encoder, conv=True):
        module = _adapted(roots[target.part], target)
        if module is None:
            continue
        down = module.lora_A[ADAPTER].weight.detach().float().cpu()
        tensors[f"{target.name}.lora_down.weight"] = down.contiguous()
        tensors[f"{target.name}.lora_up.weight"] = (
            module.lora_B[ADAPTER].weight.detach().float().cpu().contiguous()
        )
        tensors[f"{target.name}.alpha"] = torch.tensor(float(module.lora_alpha[ADAPTER]))
    return tensors


def load_kohya_tensors(unet: Any, text_encoder: Any, tensors: dict[str, Any], source: str) -> int:
    """Copy Kohya tensors into the modules' adapters (created before, same ranks and alphas); returns the layers
    loaded. A layer the file has and the model lacks, a rank or an alpha that differs: ConfigError naming it."""
    import torch

    roots = {"unet": unet, "te": text_encoder}
    by_name = {t.name: t for t in find_targets(unet, text_encoder, conv=True)}
    names = sorted({key.split(".", 1)[0] for key in tensors})
    for name in names:
        target = by_name.get(name)
        module = _adapted(roots[target.part], target) if target else None
        if module is None:
            raise ConfigError(
                f"network_weights {source}: layer {name} is not adapted in this run (check network "
                "settings: conv_dim, network_train_unet_only / network_train_text_encoder_only)"
            )
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        own_a, own_b = module.lora_A[ADAPTER].weight, module.lora_B[ADAPTER].weight
        if tuple(down.shape) != tuple(own_a.shape) or tuple(up.shape) != tuple(own_b.shape):
            raise ConfigError(
                f"network_weights {source}: {name} has rank {down.shape[0]}, this run {own_a.shape[0]} "
                "(set network_dim / conv_dim to the file's)"
            )
        alpha = float(tensors.get(f"{name}.alpha", torch.tensor(float(down.shape[0]))))
        if abs(alpha - float(module.lora_alpha[ADAPTER])) > 1e-6 * max(1.0, alpha):
            raise ConfigError(
                f"network_weights {source}: {name} has alpha {alpha:g}, this run "
                f"{float(module.lora_alpha[ADAPTER]):g} (set network_alpha / conv_alpha to the file's)"
            )
        with torch.no_grad():
            own_a.copy_(down.to(own_a.dtype))
            own_b.copy_(up.to(own_b.dtype))
    return len(names)
