"""The layers a Kohya ``networks.lora`` LoRA adapts, under Kohya's names, found in our diffusers / transformers modules.

Kohya walks the model for modules of some classes (the UNet's ``Transformer2DModel``; with ``conv_dim`` also
``ResnetBlock2D``, ``Downsample2D`` and ``Upsample2D``; the text encoder's CLIP attention and MLP) and adapts every
``Linear`` and ``Conv2d`` inside them: linears and 1x1 convs at ``network_dim``, 3x3 convs at ``conv_dim``. The key of
a layer is ``lora_unet_`` / ``lora_te_`` and its module path with dots turned into underscores; the text encoder's
path is transformers 4's (``text_model.encoder.layers.0.self_attn.q_proj``), which transformers 5 flattened away.

Example::

    for target in find_targets(model.unet, model.text_encoder, conv=True):
        print(target.name, target.path, target.kind)   # lora_unet_down_blocks_0_attentions_0_proj_in ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNET_PREFIX = "lora_unet"
TE_PREFIX = "lora_te"
UNET_BLOCKS = ("Transformer2DModel",)
UNET_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TE_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPFlashAttention2", "CLIPMLP")


@dataclass(frozen=True)
class Target:
    """One adapted layer: its Kohya name, which model holds it (``unet`` / ``te``), its path in that model, its kind
    (``linear``, ``conv1x1``, ``conv3x3``) and its weight's shape."""

    name: str
    part: str
    path: str
    kind: str
    shape: tuple[int, ...]

    @property
    def is_conv3x3(self) -> bool:
        """Adapted at ``conv_dim`` rather than ``network_dim``."""
        return self.kind == "conv3x3"


def _kind(module: Any) -> str | None:
    name = type(module).__name__
    if name == "Linear":
        return "linear"
    if name == "Conv2d":
        return "conv1x1" if tuple(module.kernel_size) == (1, 1) else "conv3x3"
    return None


def _walk(root: Any, part: str, blocks: tuple[str, ...], kohya_prefix: str, path_prefix: str) -> list[Target]:
    found: dict[str, Target] = {}
    for block_path, block in root.named_modules():
        if type(block).__name__ not in blocks:
            continue
        for child_path, child in block.named_modules():
            if "lora_" in child_path or "base_layer" in child_path:
                continue  # peft's own layers inside an adapted model
            child = getattr(child, "base_layer", child)
            kind = _kind(child)
            if kind is None:
                continue
            path = f"{block_path}.{child_path}" if block_path else child_path
            name = f"{kohya_prefix}_{(path_prefix + path).replace('.', '_')}"
            found.setdefault(path, Target(name, part, path, kind, tuple(child.weight.shape)))
    return list(found.values())


def te_path_prefix(text_encoder: Any) -> str:
    """What Kohya's names have before a text-encoder module path: transformers 5 flattened ``text_model.`` away."""
    return "" if hasattr(text_encoder, "text_model") else "text_model."


def find_targets(unet: Any | None, text_encoder: Any | None, conv: bool = False) -> list[Target]:
    """Kohya's LoRA targets of the UNet and the text encoder (either may be None); 3x3 convs (and the resnets'
    other layers) only with ``conv``. In model order."""
    targets: list[Target] = []
    if unet is not None:
        targets += _walk(unet, "unet", UNET_BLOCKS + (UNET_CONV_BLOCKS if conv else ()), UNET_PREFIX, "")
    if text_encoder is not None:
        targets += _walk(text_encoder, "te", TE_BLOCKS, TE_PREFIX, te_path_prefix(text_encoder))
    return targets


def module_name(key: str) -> str:
    """The Kohya module name of a file key (``lora_unet_x.lora_down.weight`` -> ``lora_unet_x``)."""
    return key.split(".", 1)[0]
