"""The detectors through the real scan: measured in the scan's worker path, cached as JSON, judged, reported."""

from __future__ import annotations

import json
from pathlib import Path

from _detector_images import jpeg_roundtrip, photo, save, window_screenshot
from PIL import Image, ImageFilter

from curator.scan.results import ScanSettings
from curator.scan.run import scan


def test_scan_reports_each_detector_once(tmp_path: Path) -> None:
    data = tmp_path / "1_thing"
    for i in range(8):
        save(photo(i, (400, 300)), data / f"ok{i}.png")
    save(photo(20, (400, 300)).filter(ImageFilter.GaussianBlur(3)), data / "blurred.png")
    save(photo(21, (400, 300)), data / "lowq.jpg", quality=8)
    save(jpeg_roundtrip(photo(22, (400, 300)), 10), data / "resaved.png")
    save(window_screenshot((820, 610)), data / "window.png")
    save(
        photo(0, (400, 300)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((360, 270)), data / "flip.png"
    )
    settings = ScanSettings(workers=1, workspace=tmp_path / "ws", progress=False)
    result = scan(data, settings)
    codes = {
        (f.path, f.code)
        for f in result.all_findings()
        if f.code in ("blurry", "jpeg_low_quality", "jpeg_artifacts", "screenshot", "near_duplicate")
    }
    assert codes == {
        ("blurred.png", "blurry"),
        ("lowq.jpg", "jpeg_low_quality"),
        ("resaved.png", "jpeg_artifacts"),
        ("window.png", "screenshot"),
        ("flip.png", "near_duplicate"),
    }
    doc = json.loads(json.dumps(result.to_json()))
    flip = next(i for i in doc["items"] if i["path"] == "flip.png")
    near = next(f for f in flip["findings"] if f["code"] == "near_duplicate")
    assert near["evidence"]["keeper"] == "ok0.png" and near["evidence"]["mirrored"] is True
    # a second scan judges from the cache and finds the same
    again = scan(data, settings)
    assert again.cached == len(again.records)
    assert {(f.path, f.code) for f in again.all_findings() if (f.path, f.code) in codes} == codes
