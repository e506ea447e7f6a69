"""The automatic keeper is the untouched original: mirrored, brightness-shifted, re-encoded, downscaled and cropped
copies of it lose, whatever their file names, and the finding says what marks each copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from curator.scan.results import ScanSettings
from curator.scan.run import scan


def _picture(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [110 + 90 * np.sin(x / w * rng.uniform(2, 9) + c) * np.cos(y / h * 5) for c in range(3)], -1
    )
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.rectangle(
            [x0, y0, x0 + int(rng.integers(10, w // 4)), y0 + int(rng.integers(10, h // 4))], fill=colour
        )
    return image


def _copies(original: Image.Image) -> dict[str, Image.Image]:
    w, h = original.size
    return {
        "mirrored": ImageOps.mirror(original),
        "brighter": ImageEnhance.Brightness(original).enhance(1.08),
        "darker": ImageEnhance.Brightness(original).enhance(0.92),
        "reencoded": original,  # saved at quality 60 below
        "cropped": original.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
        "smaller": original.resize((w * 7 // 10, h * 7 // 10), Image.Resampling.LANCZOS),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_original_wins_over_every_edited_copy(tmp_path: Path, seed: int) -> None:
    folder = tmp_path / "ds" / "1_thing"
    folder.mkdir(parents=True)
    original = _picture(seed)
    # the original's name sorts last, so neither the path nor the listing order can make it win
    original.save(folder / "zz_original.jpg", quality=90)
    for name, image in _copies(original).items():
        image.save(folder / f"{name}.jpg", quality=60 if name == "reencoded" else 95)
    result = scan(tmp_path / "ds", ScanSettings(workers=1, progress=False))
    near = [f for f in result.all_findings() if f.code == "near_duplicate"]
    assert {f.path for f in near} == {f"1_thing/{n}.jpg" for n in _copies(original)}
    assert {f.evidence["keeper"] for f in near} == {"1_thing/zz_original.jpg"}
    marks = {Path(str(f.path)).stem: f.evidence["copy"] for f in near}
    assert "mirrored" in marks["mirrored"]
    assert "cropped" in marks["cropped"]
    assert "downscaled" in marks["smaller"]
    assert "JPEG q60" in marks["reencoded"]
    assert "brightness +" in marks["brighter"] and "brightness -" in marks["darker"]
    assert "zz_original.jpg kept" in near[0].evidence["keeper_why"]
