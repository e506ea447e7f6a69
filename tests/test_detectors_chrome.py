"""Screenshots with photos inside (found by their window chrome), thumbnail-sized images judged at their own scale,
and the transparency message saying what training does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _detector_images import judge_all, photo, record_for, save
from PIL import Image, ImageDraw, ImageFont

from curator.checks.basic import AlphaChannel
from curator.checks.screenshot import ScreenshotCheck, chrome_bands

CHECK = ScreenshotCheck()


def viewer_window(size: tuple[int, int] = (1200, 800)) -> Image.Image:
    """A photo shown in a program window: a dark menu bar with short words and a status bar, nothing else of UI."""
    w, h = size
    img = Image.new("RGB", size, (49, 54, 59))
    img.paste(photo(11, (w, h - 60)), (0, 34))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    for i, word in enumerate(("File", "Time", "View", "Tools", "Data", "Help")):
        draw.text((8 + 70 * i, 10), word, fill=(220, 220, 220), font=font)
    draw.text((8, h - 20), "Ready   1200 x 740   100%   RGB", fill=(220, 220, 220), font=font)
    return img


def test_photo_inside_a_window_is_found_by_its_chrome(tmp_path: Path) -> None:
    rec = record_for(save(viewer_window(), tmp_path / "viewer.png"), [CHECK])
    assert rec.metrics["ui_text"] < 0.01  # the centre is all photo: the old evidence misses it
    found = judge_all(CHECK, [rec])
    assert len(found) == 1 and "chrome" in found[0].evidence["layers"], found
    assert rec.metrics["ui_chrome_edge"] in ("top", "bottom")


def test_no_chrome_on_photos_or_on_a_figure_on_white(tmp_path: Path) -> None:
    assert chrome_bands(np.asarray(photo(2).convert("L"), np.float32)) == {"top": 0.0, "bottom": 0.0}
    figure = Image.new("L", (600, 600), 255)
    draw = ImageDraw.Draw(figure)
    for x in range(
        150, 450, 6
    ):  # hatching touching the top: strokes, but the white is no bar across the width
        draw.line([(x, 0), (x + 40, 120)], fill=0, width=2)
    bands = chrome_bands(np.asarray(figure, np.float32))
    assert bands["top"] == 0.0


def test_thumbnail_sized_image_needs_chrome_for_a_pixel_verdict(tmp_path: Path) -> None:
    def page(size: tuple[int, int]) -> Image.Image:
        img = Image.new("RGB", size, (255, 255, 255))
        draw, font = ImageDraw.Draw(img), ImageFont.load_default()
        for row in range(size[1] // 16):
            draw.text(
                (4, 4 + 16 * row), "lorem ipsum dolor sit amet, consectetur " * 3, fill=(0, 0, 0), font=font
            )
        return img

    # lines of text as a 280 px thumbnail without bars: pixels alone are not counted
    small = record_for(save(page((280, 200)), tmp_path / "small.png"), [CHECK])
    assert small.metrics["ui_text"] > 0.01 and small.metrics["ui_chrome"] == 0.0
    assert judge_all(CHECK, [small]) == []
    # the same page at 560 px is judged on its pixels
    large = record_for(save(page((560, 400)), tmp_path / "large.png"), [CHECK])
    assert judge_all(CHECK, [large]) != []


def test_semi_transparent_overlay_is_not_called_fully_transparent(tmp_path: Path) -> None:
    check = AlphaChannel()
    overlay = Image.new("RGBA", (64, 64), (255, 0, 0, 128))  # alpha never 0
    rec = record_for(save(overlay, tmp_path / "overlay.png"), [check])
    (finding,) = judge_all(check, [rec])
    assert "partly transparent (none fully)" in finding.message and "100%" in finding.message
    assert "composites them on white" in finding.message and finding.evidence["trains_on"] == "white"
    cutout = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    cutout.paste((0, 0, 255, 255), (0, 0, 32, 64))
    (finding,) = judge_all(check, [record_for(save(cutout, tmp_path / "cutout.png"), [check])])
    assert finding.message.startswith("50% of the pixels are fully transparent")
