"""Architecture configs of the model families we train, written in the project (nothing is fetched), and the
inference of a config from an LDM checkpoint's tensor shapes.

Facts (checked against diffusers' ``create_unet_diffusers_config_from_ldm`` and the SD configs):
SD 1.x UNet 320/640/1280/1280, three cross-attention levels and one plain, two layers per block, 8 heads,
cross-attention 768, CLIP ViT-L/14 text encoder (12 layers, 768 wide, quick_gelu). SD 2.x: 64-channel attention heads
(``attention_head_dim`` [5, 10, 20, 20]), linear projections, cross-attention 1024, OpenCLIP ViT-H text encoder of
which 23 of 24 layers are used (SD 2 conditions on the penultimate layer), 1024 wide, gelu. The VAE is shared.

Example::

    arch = sd15_architecture()
    arch.unet["cross_attention_dim"]   # 768
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer.text_model."
SD2_TEXT_PREFIX = "cond_stage_model.model."

#: the noise schedule every SD 1.x / 2.x model was trained with
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

VAE_SCALING_FACTOR = 0.18215


@dataclass
class Architecture:
    """Diffusers configs of one SD model, plus what the LDM layout needs beyond them.

    Example::

        arch = Architecture.from_json(arch.to_json())
    """

    family: str  # "sd1" | "sd2" | "sdxl"
    unet: dict[str, Any] = field(default_factory=dict)  # UNet2DConditionModel config
    vae: dict[str, Any] = field(default_factory=dict)  # AutoencoderKL config
    text_encoder: dict[str, Any] = field(default_factory=dict)  # CLIPTextConfig kwargs
    ldm_text_layers: int = (
        0  # transformer blocks in the LDM file (SD 2: one more than the diffusers model uses)
    )
    #: SDXL's second text encoder (CLIPTextModelWithProjection kwargs); empty for SD 1.x / 2.x
    text_encoder_2: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Compact JSON (stored in the safetensors metadata of the files we write)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        return cls(**data)


def _unet(
    channels: list[int], cross: int, heads: int | list[int], linear: bool, sample: int
) -> dict[str, Any]:
    return {
        "sample_size": sample,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D"] * (len(channels) - 1) + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(channels) - 1),
        "block_out_channels": list(channels),
        "layers_per_block": 2,
        "cross_attention_dim": cross,
        "attention_head_dim": heads,
        "use_linear_projection": linear,
        "upcast_attention": linear,  # SD 2.x attention overflows in fp16 without it; weights are unaffected
    }


def _vae(channels: list[int], sample: int) -> dict[str, Any]:
    return {
        "sample_size": sample,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
        "latent_channels": 4,
        "layers_per_block": 2,
        "scaling_factor": VAE_SCALING_FACTOR,
    }


def _text(width: int, layers: int, heads: int, ffn: int, act: str, projection: int) -> dict[str, Any]:
    # bos/eos/pad ids as in the published SD text-encoder configs (legacy values; the pooled output is unused)
    return {
        "vocab_size": 49408,
        "hidden_size": width,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": 77,
        "hidden_act": act,
        "projection_dim": projection,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }


#: the VAE every SD 1.x / 2.x model shares (used when a checkpoint ships without one and --vae supplies it)
_SD_VAE = [128, 256, 512, 512]


def sd15_architecture() -> Architecture:
    """Stable Diffusion 1.x (1.4, 1.5 and their fine-tunes)."""
    return Architecture(
        family="sd1",
        unet=_unet([320, 640, 1280, 1280], 768, 8, False, 64),
        vae=_vae(_SD_VAE, 512),
        text_encoder=_text(768, 12, 12, 3072, "quick_gelu", 768),
        ldm_text_layers=12,
    )


def sd21_architecture() -> Architecture:
    """Stable Diffusion 2.x (2.0 / 2.1, 512 and 768)."""
    return Architecture(
        family="sd2",
        unet=_unet([320, 640, 1280, 1280], 1024, [5, 10, 20, 20], True, 96),
        vae=_vae(_SD_VAE, 768),
        text_encoder=_text(1024, 23, 16, 4096, "gelu", 512),
        ldm_text_layers=24,
    )


def _count(keys: set[str], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := regex.match(k))})


def _infer_unet(shapes: dict[str, tuple[int, ...]], family: str) -> dict[str, Any]:
    keys = set(shapes)
    p = UNET_PREFIX
    levels = _count(keys, re.escape(p) + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    n_input = _count(keys, re.escape(p) + r"input_blocks\.(\d+)\.")
    per_level = n_input // levels - 1
    channels, attention = [], []
    for level in range(levels):
        first = f"{p}input_blocks.{1 + level * (per_level + 1)}."
        channels.append(shapes[first + "0.out_layers.3.weight"][0])
        attention.append(first + "1.proj_in.weight" in shapes)
    attn_key = next(k for k in sorted(keys) if k.startswith(p) and k.endswith("attn2.to_k.weight"))
    proj_in = next(k for k in sorted(keys) if k.startswith(p) and k.endswith("proj_in.weight"))
    linear = len(shapes[proj_in]) == 2
    heads: int | list[int] = [max(1, c // 64) for c in channels] if family == "sd2" else 8
    unet = _unet(channels, shapes[attn_key][1], heads, linear, 96 if family == "sd2" else 64)
    unet["layers_per_block"] = per_level
    unet["in_channels"] = shapes[p + "input_blocks.0.0.weight"][1]
    unet["out_channels"] = shapes[p + "out.2.weight"][0]
    unet["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    unet["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    depth = _count(keys, re.escape(p) + r"input_blocks\.1\.1\.transformer_blocks\.(\d+)\.")
    if depth > 1:
        unet["transformer_layers_per_block"] = depth
    return unet


def _infer_vae(shapes: dict[str, tuple[int, ...]], family: str, prefix: str = VAE_PREFIX) -> dict[str, Any]:
    keys = set(shapes)
    levels = _count(keys, re.escape(prefix) + r"encoder\.down\.(\d+)\.block\.0\.conv1\.weight")
    channels = [shapes[f"{prefix}encoder.down.{i}.block.0.conv2.weight"][0] for i in range(levels)]
    vae = _vae(channels, 768 if family == "sd2" else 512)
    vae["layers_per_block"] = _count(
        keys, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight"
    )
    vae["in_channels"] = shapes[prefix + "encoder.conv_in.weight"][1]
    vae["out_channels"] = shapes[prefix + "decoder.conv_out.weight"][0]
    vae["latent_channels"] = shapes[prefix + "decoder.conv_in.weight"][1]
    return vae


def _infer_text(shapes: dict[str, tuple[int, ...]], family: str) -> tuple[dict[str, Any], int]:
    keys = set(shapes)
    if family == "sd1":
        p = SD1_TEXT_PREFIX
        vocab, width = shapes[p + "embeddings.token_embedding.weight"]
        positions = shapes[p + "embeddings.position_embedding.weight"][0]
        layers = _count(keys, re.escape(p) + r"encoder\.layers\.(\d+)\.")
        ffn = shapes[p + "encoder.layers.0.mlp.fc1.weight"][0]
        text, ldm_layers = _text(width, layers, max(1, width // 64), ffn, "quick_gelu", width), layers
    else:
        p = SD2_TEXT_PREFIX
        vocab, width = shapes[p + "token_embedding.weight"]
        positions = shapes[p + "positional_embedding"][0]
        ldm_layers = _count(keys, re.escape(p) + r"transformer\.resblocks\.(\d+)\.")
        ffn = shapes[p + "transformer.resblocks.0.mlp.c_fc.weight"][0]
        text = _text(width, ldm_layers - 1, max(1, width // 64), ffn, "gelu", 512)
    text["vocab_size"] = vocab
    text["max_position_embeddings"] = positions
    return text, ldm_layers


def infer_architecture(shapes: dict[str, tuple[int, ...]], family: str) -> Architecture:
    """The architecture of an LDM checkpoint of ``family`` from its tensor shapes (keys with LDM prefixes).

    Head counts are not visible in weights: SD 1.x uses 8 UNet heads, SD 2.x 64-channel heads, CLIP 64-channel heads.
    """
    text, ldm_layers = _infer_text(shapes, family)
    return Architecture(
        family=family,
        unet=_infer_unet(shapes, family),
        vae=_infer_vae(shapes, family)
        if any(k.startswith(VAE_PREFIX) for k in shapes)
        else _vae(_SD_VAE, 512),
        text_encoder=text,
        ldm_text_layers=ldm_layers,
    )
