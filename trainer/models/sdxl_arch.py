"""SDXL architecture configs, written in the project, and their inference from an LDM file's tensor shapes.

Facts (Kohya sd-scripts' ``sdxl_model_util`` and the SDXL base 1.0 release): the UNet has three levels
320/640/1280, a plain first level and two cross-attention levels with 1 / 2 / 10 transformer blocks (the middle block
10 as well), 64-channel heads, linear projections, cross-attention 2048 (768 + 1280: both text encoders' penultimate
hidden states side by side), and a "text_time" added embedding (LDM ``label_emb``) of 2816 inputs: the second text
encoder's pooled output (1280) and six size numbers of 256 sinusoidal channels each (original height / width, crop
top / left, target height / width). Text encoder 1 is CLIP ViT-L/14 (12 layers, 768, quick_gelu), text encoder 2
OpenCLIP ViT-bigG/14 (32 layers, 1280, gelu, a 1280 x 1280 text projection for the pooled output). The VAE has SD's
shape with scaling factor 0.13025.

Example::

    arch = sdxl_architecture()
    arch.unet["cross_attention_dim"]           # 2048
    arch.text_encoder_2["projection_dim"]      # 1280
"""

from __future__ import annotations

import re
from typing import Any

from trainer.models.arch import UNET_PREFIX, VAE_PREFIX, Architecture, _infer_vae, _text, _vae

SDXL_TEXT1_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_TEXT2_PREFIX = "conditioner.embedders.1.model."
#: the refiner's only text encoder (OpenCLIP bigG) sits at embedders.0 in OpenCLIP layout
SDXL_REFINER_TEXT_PREFIX = "conditioner.embedders.0.model."
SDXL_VAE_SCALING_FACTOR = 0.13025
#: channels of each of the six size numbers in the added embedding (diffusers: addition_time_embed_dim)
SIZE_EMBED_DIM = 256
#: the shape markers ComfyUI reads for v-prediction (empty tensors in the state dict; "ztsnr": zero terminal SNR)
V_PRED_MARKER = "v_pred"
ZTSNR_MARKER = "ztsnr"


def _sdxl_unet(
    channels: list[int], heads: list[int], depth: list[int], cross: int, pooled: int, sample: int
) -> dict[str, Any]:
    return {
        "sample_size": sample,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(channels) - 1),
        "up_block_types": ["CrossAttnUpBlock2D"] * (len(channels) - 1) + ["UpBlock2D"],
        "block_out_channels": list(channels),
        "layers_per_block": 2,
        "cross_attention_dim": cross,
        "attention_head_dim": list(heads),  # diffusers' name; it holds head counts per level
        "transformer_layers_per_block": list(depth),
        "use_linear_projection": True,
        "upcast_attention": False,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": SIZE_EMBED_DIM,
        "projection_class_embeddings_input_dim": pooled + 6 * SIZE_EMBED_DIM,
    }


def _sdxl_vae(channels: list[int], sample: int) -> dict[str, Any]:
    vae = _vae(channels, sample)
    vae["scaling_factor"] = SDXL_VAE_SCALING_FACTOR
    return vae


def sdxl_architecture() -> Architecture:
    """SDXL base 1.0 and its derivatives (Pony, Illustrious, NoobAI, ...: same tensors, other weights)."""
    return Architecture(
        family="sdxl",
        unet=_sdxl_unet([320, 640, 1280], [5, 10, 20], [1, 2, 10], 2048, 1280, 128),
        vae=_sdxl_vae([128, 256, 512, 512], 1024),
        text_encoder=_text(768, 12, 12, 3072, "quick_gelu", 768),
        ldm_text_layers=12,
        text_encoder_2=_text(1280, 32, 20, 5120, "gelu", 1280),
    )


def tiny_sdxl_architecture() -> Architecture:
    """SDXL's topology with narrow widths: UNet 32/32/64, a plain first level and two cross-attention levels (the
    deepest 2 transformer blocks instead of 10, for speed: block numbering is the same code path), text encoders
    32 wide (2 layers) and 64 wide (10 layers: diffusers recognises an SDXL file by its second encoder's 10th block),
    128 px. The encoders' widths differ as in the real model, so no reader can mistake one for the other."""
    return Architecture(
        family="sdxl",
        unet=_sdxl_unet([32, 32, 64], [1, 1, 2], [1, 2, 2], 32 + 64, 64, 16),
        vae=_sdxl_vae([32, 32, 64, 64], 128),
        text_encoder=_text(32, 2, 4, 64, "quick_gelu", 32),
        ldm_text_layers=2,
        text_encoder_2=_text(64, 10, 2, 128, "gelu", 64),
    )


def _count(keys: set[str], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := regex.match(k))})


def _infer_unet(shapes: dict[str, tuple[int, ...]], pooled: int) -> dict[str, Any]:
    keys, p = set(shapes), re.escape(UNET_PREFIX)
    levels = _count(keys, p + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    per_level = _count(keys, p + r"input_blocks\.(\d+)\.") // levels - 1
    channels, depth = [], []
    for level in range(levels):
        first = 1 + level * (per_level + 1)
        channels.append(shapes[f"{UNET_PREFIX}input_blocks.{first}.0.out_layers.3.weight"][0])
        depth.append(_count(keys, p + rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\."))
    attn = next(k for k in sorted(keys) if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight"))
    unet = _sdxl_unet(channels, [max(1, c // 64) for c in channels], depth, shapes[attn][1], pooled, 128)
    unet["down_block_types"] = ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depth]
    unet["up_block_types"] = ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(depth)]
    # diffusers wants one depth per level; a level without attention keeps SDXL's 1 (unused)
    unet["transformer_layers_per_block"] = [d or 1 for d in depth]
    unet["layers_per_block"] = per_level
    unet["in_channels"] = shapes[UNET_PREFIX + "input_blocks.0.0.weight"][1]
    unet["out_channels"] = shapes[UNET_PREFIX + "out.2.weight"][0]
    unet["projection_class_embeddings_input_dim"] = shapes[UNET_PREFIX + "label_emb.0.0.weight"][1]
    return unet


def _infer_text1(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    p = SDXL_TEXT1_PREFIX
    vocab, width = shapes[p + "embeddings.token_embedding.weight"]
    layers = _count(set(shapes), re.escape(p) + r"encoder\.layers\.(\d+)\.")
    text = _text(
        width,
        layers,
        max(1, width // 64),
        shapes[p + "encoder.layers.0.mlp.fc1.weight"][0],
        "quick_gelu",
        width,
    )
    text["vocab_size"] = vocab
    text["max_position_embeddings"] = shapes[p + "embeddings.position_embedding.weight"][0]
    return text


def _infer_text2(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    p = SDXL_TEXT2_PREFIX
    vocab, width = shapes[p + "token_embedding.weight"]
    layers = _count(set(shapes), re.escape(p) + r"transformer\.resblocks\.(\d+)\.")
    ffn = shapes[p + "transformer.resblocks.0.mlp.c_fc.weight"][0]
    text = _text(width, layers, max(1, width // 64), ffn, "gelu", shapes[p + "text_projection"][1])
    text["vocab_size"] = vocab
    text["max_position_embeddings"] = shapes[p + "positional_embedding"][0]
    return text


def infer_sdxl_architecture(shapes: dict[str, tuple[int, ...]]) -> Architecture:
    """The architecture of an SDXL LDM file from its tensor shapes (head counts: 64-channel heads, as SDXL)."""
    text2 = _infer_text2(shapes)
    has_vae = any(k.startswith(VAE_PREFIX) for k in shapes)
    vae = _infer_vae(shapes, "sd1") if has_vae else _vae([128, 256, 512, 512], 1024)
    vae["sample_size"], vae["scaling_factor"] = 1024, SDXL_VAE_SCALING_FACTOR
    text1 = _infer_text1(shapes)
    return Architecture(
        family="sdxl",
        unet=_infer_unet(shapes, text2["projection_dim"]),
        vae=vae,
        text_encoder=text1,
        ldm_text_layers=text1["num_hidden_layers"],
        text_encoder_2=text2,
    )
