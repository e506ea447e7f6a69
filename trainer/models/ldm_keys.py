"""diffusers -> LDM ("original Stable Diffusion") key mapping, the exact inverse of diffusers' LDM -> diffusers
converters in ``diffusers.loaders.single_file_utils`` (which only go one way).

The mapping is data: a table of module prefixes (diffusers prefix -> LDM prefix, plus renames of the leaf module)
built from the model config, applied to every key. A key the table does not cover is an error, so a silent gap in
the mapping cannot produce a file that WebUI, ComfyUI or Kohya would half-load.

Example::

    ldm = unet_to_ldm(unet.state_dict(), unet.config)   # {"model.diffusion_model.input_blocks.0.0.weight": ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.models.arch import SD1_TEXT_PREFIX, SD2_TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX

#: leaf renames inside a UNet resnet (diffusers -> LDM)
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
#: OpenCLIP (SD 2.x) names of a CLIP encoder layer's modules; q/k/v are fused into in_proj separately
OPEN_CLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}

Table = dict[str, tuple[str, dict[str, str]]]


def _cfg(config: Any, name: str) -> Any:
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


def unet_table(config: Any) -> Table:
    """Module prefix table of a UNet2DConditionModel config (SD layout: down blocks of ``layers_per_block``)."""
    per = int(_cfg(config, "layers_per_block"))
    levels = len(_cfg(config, "block_out_channels"))
    up_types = list(_cfg(config, "up_block_types"))
    table: Table = {
        "time_embedding.linear_1.": ("time_embed.0.", {}),
        "time_embedding.linear_2.": ("time_embed.2.", {}),
        "conv_in.": ("input_blocks.0.0.", {}),
        "conv_norm_out.": ("out.0.", {}),
        "conv_out.": ("out.2.", {}),
        "mid_block.resnets.0.": ("middle_block.0.", UNET_RESNET),
        "mid_block.attentions.0.": ("middle_block.1.", {}),
        "mid_block.resnets.1.": ("middle_block.2.", UNET_RESNET),
        # SDXL's added (pooled text + size) embedding; absent from SD 1.x / 2.x state dicts, so unused there
        "add_embedding.linear_1.": ("label_emb.0.0.", {}),
        "add_embedding.linear_2.": ("label_emb.0.2.", {}),
    }
    for level in range(levels):
        for layer in range(per):
            index = 1 + level * (per + 1) + layer
            table[f"down_blocks.{level}.resnets.{layer}."] = (f"input_blocks.{index}.0.", UNET_RESNET)
            table[f"down_blocks.{level}.attentions.{layer}."] = (f"input_blocks.{index}.1.", {})
        if level < levels - 1:
            index = 1 + level * (per + 1) + per
            table[f"down_blocks.{level}.downsamplers.0.conv."] = (f"input_blocks.{index}.0.op.", {})
    for level in range(levels):
        for layer in range(per + 1):
            index = level * (per + 1) + layer
            table[f"up_blocks.{level}.resnets.{layer}."] = (f"output_blocks.{index}.0.", UNET_RESNET)
            table[f"up_blocks.{level}.attentions.{layer}."] = (f"output_blocks.{index}.1.", {})
        if level < levels - 1:
            index = level * (per + 1) + per
            slot = (
                2 if up_types[level].startswith("CrossAttn") else 1
            )  # after the attention, if the level has one
            table[f"up_blocks.{level}.upsamplers.0.conv."] = (f"output_blocks.{index}.{slot}.conv.", {})
    return table


def vae_table(config: Any) -> Table:
    """Module prefix table of an AutoencoderKL config. LDM numbers the decoder's levels bottom-up."""
    per = int(_cfg(config, "layers_per_block"))
    levels = len(_cfg(config, "block_out_channels"))
    table: Table = {}
    for part in ("encoder", "decoder"):
        for name in ("conv_in.", "conv_out."):
            table[f"{part}.{name}"] = (f"{part}.{name}", {})
        table[f"{part}.conv_norm_out."] = (f"{part}.norm_out.", {})
        table[f"{part}.mid_block.resnets.0."] = (f"{part}.mid.block_1.", VAE_RESNET)
        table[f"{part}.mid_block.resnets.1."] = (f"{part}.mid.block_2.", VAE_RESNET)
        table[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", VAE_ATTENTION)
    for name in ("quant_conv.", "post_quant_conv."):
        table[name] = (name, {})
    for level in range(levels):
        for layer in range(per):
            table[f"encoder.down_blocks.{level}.resnets.{layer}."] = (
                f"encoder.down.{level}.block.{layer}.",
                VAE_RESNET,
            )
        if level < levels - 1:
            table[f"encoder.down_blocks.{level}.downsamplers.0.conv."] = (
                f"encoder.down.{level}.downsample.conv.",
                {},
            )
        ldm_level = levels - 1 - level
        for layer in range(per + 1):
            table[f"decoder.up_blocks.{level}.resnets.{layer}."] = (
                f"decoder.up.{ldm_level}.block.{layer}.",
                VAE_RESNET,
            )
        if level < levels - 1:
            table[f"decoder.up_blocks.{level}.upsamplers.0.conv."] = (
                f"decoder.up.{ldm_level}.upsample.conv.",
                {},
            )
    return table


def _rename_leaf(rest: str, renames: dict[str, str]) -> str:
    """Rename the module part of ``rest`` ("norm1.weight", "to_out.0.bias") by the longest matching entry."""
    for old in sorted(renames, key=len, reverse=True):
        if rest.startswith(old + "."):
            return renames[old] + rest[len(old) :]
    return rest


def map_keys(state: Mapping[str, Any], table: Table, prefix: str) -> dict[str, Any]:
    """Apply a prefix table to a diffusers state dict; every key must be covered (KeyError names the first gap)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut]) + "."
            if head in table:
                ldm_head, renames = table[head]
                out[prefix + ldm_head + _rename_leaf(key[len(head) :], renames)] = value
                break
        else:
            raise KeyError(f"no LDM name for diffusers key {key!r}")
    return out


def unet_to_ldm(state: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """UNet2DConditionModel state dict -> ``model.diffusion_model.*`` keys (same tensors, no copies)."""
    return map_keys(state, unet_table(config), UNET_PREFIX)


def vae_to_ldm(state: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """AutoencoderKL state dict -> ``first_stage_model.*``; attention projections become 1x1 convs as in LDM."""
    out = map_keys(state, vae_table(config), VAE_PREFIX)
    for key, value in out.items():
        if (
            ".mid.attn_1." in key
            and key.endswith(".weight")
            and key.split(".")[-2] in ("q", "k", "v", "proj_out")
        ):
            if value.ndim == 2:
                out[key] = value.reshape(*value.shape, 1, 1)
    return out


def _strip_text_model(state: Mapping[str, Any]) -> dict[str, Any]:
    # transformers 5's CLIPTextModel has no `text_model.` level in its keys; older versions do (both accepted)
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def clip_to_ldm(state: Mapping[str, Any]) -> dict[str, Any]:
    """SD 1.x: CLIPTextModel state dict -> ``cond_stage_model.transformer.text_model.*``."""
    return {SD1_TEXT_PREFIX + k: v for k, v in _strip_text_model(state).items()}


def open_clip_to_ldm(state: Mapping[str, Any]) -> dict[str, Any]:
    """SD 2.x: CLIPTextModel state dict -> OpenCLIP ``cond_stage_model.model.*`` (q, k, v fused into in_proj)."""
    import torch

    flat = _strip_text_model(state)
    out: dict[str, Any] = {}
    fused: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        if key in OPEN_CLIP_TOP:
            out[SD2_TEXT_PREFIX + OPEN_CLIP_TOP[key]] = value
            continue
        if not key.startswith("encoder.layers."):
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
        layer, rest = key[len("encoder.layers.") :].split(".", 1)
        block = f"{SD2_TEXT_PREFIX}transformer.resblocks.{layer}."
        if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
            kind = rest.rsplit(".", 1)[1]  # weight | bias
            fused.setdefault(f"{block}attn.in_proj_{kind}", {})[rest.split(".")[1]] = value
            continue
        out[block + _rename_leaf(rest, OPEN_CLIP_LAYER)] = value
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    return out
