"""screenshot: pixel structure alone, file names, metadata; screen size is weak evidence only."""

from __future__ import annotations

from pathlib import Path

import pytest
from _detector_images import judge_all, photo, record_for, save, window_screenshot
from PIL import Image, PngImagePlugin

from curator.checks.screenshot import ScreenshotCheck, filename_hint, metadata_hint
from curator.findings import Severity

CHECK = ScreenshotCheck()


def _findings(path: Path) -> list:
    return judge_all(CHECK, [record_for(path, [CHECK])])


def test_rendered_window_fires_from_pixels_alone(tmp_path: Path) -> None:
    found = _findings(save(window_screenshot((820, 610)), tmp_path / "a1b2c3.png"))  # not a screen size
    assert [f.code for f in found] == ["screenshot"]
    ev = found[0].evidence
    assert set(ev["layers"]) == {"pixels"} and ev["layers"]["pixels"] >= ev["threshold"]
    assert ev["features"]["ui_text"] > 0 and ev["features"]["ui_edges"] > 0


def test_rendered_window_survives_jpeg(tmp_path: Path) -> None:
    assert _findings(save(window_screenshot(), tmp_path / "shot.jpg", quality=85))


def test_text_of_a_resaved_or_upscaled_capture_still_reads_as_text(tmp_path: Path) -> None:
    # JPEG ringing around the strokes (quality 75) and an upscale's soft strokes: the text layer still sees lines
    # of text, at the tolerance scaled by each tile's contrast and at the detail level of the larger file
    shot = window_screenshot((820, 610))
    resaved = record_for(save(shot, tmp_path / "resaved.jpg", quality=75), [CHECK])
    upscaled = record_for(
        save(shot.resize((1640, 1220), Image.Resampling.BICUBIC), tmp_path / "up.jpg"), [CHECK]
    )
    for rec in (resaved, upscaled):
        assert rec.metrics["ui_text"] >= CHECK.defaults["text_full"], rec.metrics
    photos = [
        record_for(save(photo(seed, (1600, 1200)), tmp_path / f"p{seed}.jpg", quality=75), [CHECK])
        for seed in range(3)
    ]
    assert all(rec.metrics["ui_text"] == 0.0 for rec in photos)


def test_photo_stand_in_is_quiet(tmp_path: Path) -> None:
    for seed in range(3):
        assert _findings(save(photo(seed), tmp_path / f"photo{seed}.png")) == []


def test_screen_resolution_alone_never_fires(tmp_path: Path) -> None:
    assert _findings(save(photo(5, (1920, 1080)), tmp_path / "wallpaper.png")) == []


def test_capture_tool_metadata_fires_and_is_named(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Greenshot")
    found = _findings(save(photo(6), tmp_path / "img.png", pnginfo=info))
    assert found and found[0].evidence["layers"]["metadata"] == "Software=Greenshot"


def test_pixels_and_metadata_together_are_an_error(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "gnome-screenshot")
    found = _findings(save(window_screenshot(), tmp_path / "Screenshot from 2024-01-01.png", pnginfo=info))
    assert found[0].severity is Severity.ERROR
    assert {"metadata", "filename", "pixels"} <= set(found[0].evidence["layers"])


@pytest.mark.parametrize(
    "name",
    [
        "Screenshot_20240101-120000.png",
        "Screen Shot 2020-05-01 at 10.00.00.png",
        "Screenshot 2024-01-01 at 10.00.00.png",
        "Screenshot from 2023-03-03 12-00-00.png",
        "截图20240101.png",
        "屏幕截图 2024-01-01 100000.png",
        "微信截图_20240101.png",
        "QQ截图20240101.png",
        "Snipaste_2024-01-01_10-00-00.png",
        "スクリーンショット 2024-01-01 10.00.00.png",
        "Bildschirmfoto vom 2024-01-01 10-00-00.png",
        "Captura de pantalla 2024-01-01 100000.png",
        "Capture d’écran 2024-01-01 à 10.00.00.png",
        "Capture d'écran du 2024-01-01.png",
    ],
)
def test_filename_patterns(name: str) -> None:
    assert filename_hint(name)


@pytest.mark.parametrize("name", ["IMG_1234.JPG", "DSC00042.jpg", "portrait_screen_print.png", "cat.png"])
def test_ordinary_names_are_not_hints(name: str) -> None:
    assert filename_hint(name) is None


def test_xmp_user_comment_from_ios() -> None:
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/">'
        '<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">Screenshot</rdf:li></rdf:Alt></exif:UserComment>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    assert metadata_hint({}, xmp, {}) == "XMP UserComment=Screenshot"
    assert metadata_hint({}, "", {"Software": "Snipping Tool"}) == "Software=Snipping Tool"
    assert metadata_hint({"Software": "GIMP 2.10"}, "", {}) is None
