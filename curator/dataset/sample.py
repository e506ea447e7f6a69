"""A deterministic sample dataset in Kohya layout, with a few deliberately bad images and captions (the demo's
input, and a handy fixture).

Example::

    root = make_sample_dataset(Path("demo-output"))  # -> demo-output/train, with 10_mystyle/ inside
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from curator.fsutil import atomic_write_bytes, atomic_write_text

TRIGGER = "mystyle"
CONCEPT_FOLDER = f"10_{TRIGGER}"
GOOD_IMAGES = 18

_SUBJECTS = [
    "a mountain lake",
    "a city street",
    "a forest path",
    "a portrait of a woman",
    "a red car",
    "a cat",
]
_EXTRA_TAGS = [
    "warm light",
    "soft shadows",
    "bold outlines",
    "pastel colors",
    "high contrast",
    "flat shading",
]
_LONG_TAGS = [
    "masterpiece", "best quality", "highly detailed", "intricate background", "dramatic lighting", "volumetric fog",
    "golden hour", "cinematic composition", "sharp focus", "depth of field", "vivid colors", "textured brushwork",
    "ornate frame", "reflections on water", "distant mountains", "scattered clouds", "tall grass", "wind blown hair",
    "looking at viewer", "full body", "wide angle", "rule of thirds", "muted palette", "film grain",
]  # fmt: skip


def make_sample_dataset(out: Path, seed: int = 0) -> Path:
    """Write the sample dataset under ``out/train`` and return that root. Same seed, same bytes.

    Files whose content is unchanged are not rewritten, so a second run keeps the scan cache valid.
    """
    root = Path(out) / "train"
    folder = root / CONCEPT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    makers: list[Callable[[np.random.Generator, int], Image.Image]] = [_gradient_scene, _shapes, _texture]
    good: list[Image.Image] = []
    for index in range(GOOD_IMAGES):
        size = int(rng.choice([512, 576, 640, 704, 768]))
        image = makers[index % len(makers)](rng, size)
        good.append(image)
        _write_image(folder / f"img_{index:03d}.png", image, "PNG")
    _write_bad_images(folder, good, rng)
    _write_captions(folder, rng)
    return root


# --- images ---------------------------------------------------------------------------------------------------


def _palette(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(20, 236, size=(2, 3)).astype(np.float32)


def _gradient_scene(rng: np.random.Generator, size: int) -> Image.Image:
    top, bottom = _palette(rng)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    sky = (top * (1 - t) + bottom * t) * np.ones((1, size, 1), dtype=np.float32)
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):  # hills with hard edges: sharp detail for the blur metrics
        x0, y0 = int(rng.integers(-size // 2, size)), int(rng.integers(size // 2, size))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour, outline=(0, 0, 0), width=3)
    return image


def _shapes(rng: np.random.Generator, size: int) -> Image.Image:
    background = tuple(int(c) for c in rng.integers(150, 256, 3))
    image = Image.new("RGB", (size, int(size * rng.choice([1.0, 1.25, 1.5]))), background)
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = int(rng.integers(0, image.width)), int(rng.integers(0, image.height))
        r = int(rng.integers(10, size // 5))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(20, 20, 20), width=2)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour, outline=(20, 20, 20), width=2)
    return image


def _texture(rng: np.random.Generator, size: int) -> Image.Image:
    coarse = rng.integers(0, 256, size=(size // 32, size // 32, 3), dtype=np.uint8)
    base = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 18, size=(size, size, 3))
    pixels = np.clip(np.asarray(base, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _screenshot(rng: np.random.Generator) -> Image.Image:
    """A rendered application window: title bar, toolbar, text lines (teaches UI chrome if trained)."""
    image = Image.new("RGB", (720, 540), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 720, 28), fill=(45, 45, 48))
    for i, colour in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        draw.ellipse((10 + i * 20, 8, 22 + i * 20, 20), fill=colour)
    draw.text((300, 8), "Untitled - Viewer", fill=(230, 230, 230))
    draw.rectangle((0, 28, 720, 60), fill=(225, 225, 228))
    for i in range(8):
        draw.rectangle((10 + i * 40, 34, 36 + i * 40, 54), fill=(200, 200, 205))
    draw.rectangle((0, 60, 160, 540), fill=(250, 250, 252))
    for line in range(22):
        y = 72 + line * 20
        width = int(rng.integers(200, 520))
        draw.text((175, y), "Lorem ipsum dolor sit amet, consectetur"[: width // 12], fill=(30, 30, 30))
        draw.text((12, y), f"item {line}", fill=(60, 60, 60))
    return image


def _write_bad_images(folder: Path, good: list[Image.Image], rng: np.random.Generator) -> None:
    start = GOOD_IMAGES
    names = [f"img_{start + i:03d}" for i in range(7)]
    _write_image(folder / f"{names[0]}.png", good[1].filter(ImageFilter.GaussianBlur(6)), "PNG")  # blurred
    _write_image(folder / f"{names[1]}.png", good[2], "PNG")  # exact duplicate of img_002
    _write_image(folder / f"{names[2]}.png", ImageOps.mirror(good[3]), "PNG")  # mirrored near-duplicate
    _write_image(folder / f"{names[3]}.jpg", good[4], "JPEG", quality=8)  # heavy compression
    _write_image(folder / f"{names[4]}.png", _screenshot(rng), "PNG")  # screenshot, named without a hint
    _write_image(folder / f"{names[5]}.png", good[5].resize((48, 48)), "PNG")  # tiny
    with_alpha = good[6].convert("RGBA")
    alpha = Image.new("L", with_alpha.size, 255)
    ImageDraw.Draw(alpha).ellipse((0, 0, with_alpha.width // 2, with_alpha.height // 2), fill=0)
    with_alpha.putalpha(alpha)
    _write_image(folder / f"{names[6]}.png", with_alpha, "PNG")  # transparent corner


def _write_image(path: Path, image: Image.Image, fmt: str, **options: int) -> None:
    buf = io.BytesIO()
    if fmt == "PNG":
        options = {"compress_level": 1, **options}
    image.save(buf, fmt, **options)
    _write_if_changed(path, buf.getvalue())


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write_bytes(path, data)


# --- captions -------------------------------------------------------------------------------------------------


def _write_captions(folder: Path, rng: np.random.Generator) -> None:
    images = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    for index, image in enumerate(images):
        if index == 7:
            continue  # a missing caption
        subject = _SUBJECTS[index % len(_SUBJECTS)]
        extras = [_EXTRA_TAGS[int(i)] for i in rng.choice(len(_EXTRA_TAGS), size=2, replace=False)]
        tags = [TRIGGER, subject, *extras]
        if index == 3:
            tags.append(extras[0])  # a duplicate tag
        if index == 5:
            tags = [subject, TRIGGER, *extras]  # the trigger not first
        if index == 9:
            tags = [TRIGGER, subject, *_LONG_TAGS]  # far over 75 CLIP tokens
        text = ", ".join(tags) + "\n"
        caption = image.with_suffix(".txt")
        try:
            if caption.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        atomic_write_text(caption, text)
