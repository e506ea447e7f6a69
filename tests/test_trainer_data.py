"""The trainer's data pipeline: EXIF orientation, cover + centre crop, captions as Kohya, long-caption chunks, the
latent cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.dataset.discover import Item
from curator.settings.config import TrainConfig
from trainer.data import Batch, LatentCache, Sample, batch_captions, load_pixels, oriented_size

torch = pytest.importorskip("torch")


def _rotated_jpeg(path: Path) -> None:
    # stored 200 wide x 100 high, left half black, right half white; EXIF 6 = display rotated 90 degrees clockwise
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, 100:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes(), quality=95)


def _item(path: Path, caption: Path | None = None) -> Item:
    return Item(path=path, rel=path.name, concept="sks", repeats=1, caption_path=caption)


def test_exif_orientation_is_applied_before_bucketing_and_cropping(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    _rotated_jpeg(path)
    assert oriented_size(path) == (100, 200)
    pixels = load_pixels(Sample(_item(path), bucket=(64, 128), resized=(64, 128)))
    assert pixels.shape == (3, 128, 64)
    assert -1.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0
    top, bottom = pixels[:, :60].mean().item(), pixels[:, 68:].mean().item()
    assert top < -0.9 and bottom > 0.9  # the black half went to the top, as a viewer shows it


def test_scale_to_cover_then_centre_crop(tmp_path: Path) -> None:
    pixels = np.zeros((100, 300, 3), dtype=np.uint8)
    pixels[:, 100:200] = 255  # a white middle third
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = load_pixels(Sample(_item(tmp_path / "wide.png"), bucket=(64, 64), resized=(192, 64)))
    assert out.shape == (3, 64, 64) and out.mean().item() > 0.95  # only the middle third is left


def test_captions_keep_the_first_tags_and_are_reproducible(tmp_path: Path) -> None:
    caption = tmp_path / "a.txt"
    caption.write_text("sks, red, blue, green, yellow, purple\nignored second line")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    sample = Sample(_item(tmp_path / "a.png", caption), (64, 64), (64, 64))
    batch = Batch((64, 64), (sample,))
    config = TrainConfig(keep_tokens=1)
    seen = {batch_captions(batch, config, epoch=e, index=0)[0] for e in range(1, 9)}
    assert all(c.startswith("sks, ") and "ignored" not in c for c in seen) and len(seen) > 1
    assert batch_captions(batch, config, 3, 0) == batch_captions(batch, config, 3, 0)
    assert batch_captions(batch, config.replace(caption_dropout_rate=1.0), 1, 0) == [""]
    no_caption = Batch((64, 64), (Sample(_item(tmp_path / "a.png"), (64, 64), (64, 64)),))
    assert batch_captions(no_caption, config, 1, 0) == ["sks"]  # Kohya: the concept's class name


def test_long_captions_are_encoded_in_75_token_chunks() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from curator.captions.tokenizer import clip_tokenizer_dir
    from trainer.text import encode, tokenize

    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_dir())
    long_caption = ", ".join(f"tag{i}" for i in range(60))
    ids = tokenize(tokenizer, [long_caption, "short"], max_token_length=150)
    assert ids.shape == (2, 2, 77)
    assert (ids[:, :, 0] == tokenizer.bos_token_id).all() and (ids[:, :, -1] == tokenizer.eos_token_id).all()
    model = CLIPTextModel(
        CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    )
    assert encode(model, ids, clip_skip=1).shape == (2, 152, 32)
    assert encode(model, ids, clip_skip=2).shape == (2, 152, 32)
    assert encode(model, tokenize(tokenizer, ["short"], 75), clip_skip=1).shape == (1, 77, 32)


def test_latent_cache_on_disk_misses_when_the_image_changes(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    sample = Sample(_item(image), (64, 64), (64, 64))
    cache = LatentCache(tmp_path / "cache", vae_id="vae1")
    cache.put(sample, torch.ones(4, 8, 8))
    again = LatentCache(tmp_path / "cache", vae_id="vae1")
    assert torch.equal(again.get(sample), torch.ones(4, 8, 8))
    assert LatentCache(tmp_path / "cache", vae_id="vae2").get(sample) is None
    os.utime(image, ns=(1, 1))
    assert again.get(sample) is None
