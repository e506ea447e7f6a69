"""The SD 2.x text encoder we write is OpenCLIP's own layout: open_clip loads our ``cond_stage_model.model.*`` keys
without gaps, and its penultimate-layer hidden states (what SD 2 conditions on) equal our CLIPTextModel's output.
This checks the q/k/v fusion and the names independently of diffusers' converter."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
open_clip_model = pytest.importorskip("open_clip.model")

from safetensors.torch import load_file  # noqa: E402

from trainer.models.arch import SD2_TEXT_PREFIX  # noqa: E402
from trainer.models.tiny import build_random_model, tiny_configs, write_tiny_model  # noqa: E402


def _open_clip_text_model(width: int, heads: int, layers: int, ffn: int):
    text = open_clip_model.CLIPTextCfg(width=width, heads=heads, layers=layers, mlp_ratio=ffn / width)
    vision = open_clip_model.CLIPVisionCfg(layers=1, width=32, patch_size=16, image_size=32, head_width=16)
    return open_clip_model.CLIP(embed_dim=width, vision_cfg=vision, text_cfg=text).eval()


def test_open_clip_loads_our_sd2_text_encoder_and_agrees(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny2.safetensors", family="sd2")
    cfg = tiny_configs("sd2")
    te = cfg.text_encoder
    reference = _open_clip_text_model(
        te["hidden_size"], te["num_attention_heads"], cfg.ldm_text_layers, te["intermediate_size"]
    )
    ours = {
        k.removeprefix(SD2_TEXT_PREFIX): v
        for k, v in load_file(path).items()
        if k.startswith(SD2_TEXT_PREFIX)
    }
    result = reference.load_state_dict(ours, strict=False)
    assert result.unexpected_keys == []
    assert all(k.startswith("visual.") for k in result.missing_keys), result.missing_keys

    model = build_random_model(cfg)  # the in-memory model the file was written from
    ids = model.tokenizer(
        ["a photo of sks dog"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        x = reference.token_embedding(ids) + reference.positional_embedding
        for block in reference.transformer.resblocks[:-1]:  # SD 2 stops before the last block ("penultimate")
            x = block(x, attn_mask=reference.attn_mask)
        expected = reference.ln_final(x)
        got = model.text_encoder(ids)[0]
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
