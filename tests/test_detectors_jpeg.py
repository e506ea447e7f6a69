"""jpeg_low_quality / jpeg_artifacts: quality from the tables, blockiness from the pixels (also after a re-save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _detector_images import jpeg_roundtrip, judge_all, photo, record_for, save

from curator.checks.jpeg import STD_LUMA, JpegCheck, blockiness, estimate_quality, ijg_table
from curator.findings import Severity

CHECK = JpegCheck()


def _codes(tmp_path: Path, name: str, img, **opts) -> list:
    record = record_for(save(img, tmp_path / name, **opts), [CHECK])
    return judge_all(CHECK, [record])


@pytest.mark.parametrize("quality", [5, 10, 20, 35, 50, 60, 75, 90, 95, 100])
def test_quality_estimate_is_exact_for_ijg_tables(tmp_path: Path, quality: int) -> None:
    path = save(photo(1, (96, 96)), tmp_path / "q.jpg", quality=quality)
    from PIL import Image

    est = estimate_quality(Image.open(path).quantization)
    assert est["quality"] == quality and est["standard"] is True


def test_non_standard_tables_are_reported() -> None:
    tables = {0: list(np.clip(ijg_table(STD_LUMA, 30) + 3, 1, 255)), 1: list(np.full(64, 40))}
    est = estimate_quality(tables)
    assert est["standard"] is False and 15 <= est["quality"] <= 45


def test_low_quality_jpeg_fires_high_quality_quiet(tmp_path: Path) -> None:
    img = photo(2)
    low = _codes(tmp_path, "low.jpg", img, quality=10)
    assert [f.code for f in low] == ["jpeg_low_quality"]
    assert low[0].severity is Severity.ERROR
    assert low[0].evidence["jpeg_quality"] == 10 and low[0].evidence["standard_tables"] is True
    assert _codes(tmp_path, "high.jpg", img, quality=95) == []
    assert _codes(tmp_path, "mid.jpg", img, quality=60) == []


def test_jpeg_resaved_as_png_fires_on_blockiness(tmp_path: Path) -> None:
    img = photo(3)
    found = _codes(tmp_path, "resaved.png", jpeg_roundtrip(img, 10))
    assert [f.code for f in found] == ["jpeg_artifacts"]
    assert found[0].evidence["blockiness"] > found[0].evidence["threshold"]
    assert _codes(tmp_path, "clean.png", img) == []


def test_blockiness_survives_a_small_crop() -> None:
    gray = np.asarray(jpeg_roundtrip(photo(4), 10).convert("L"), np.float32)
    full = blockiness(gray)
    cropped = blockiness(gray[3:, 5:])
    assert cropped["blockiness"] > 0.5 * full["blockiness"] > 0.2
    assert cropped["offset"] == [(full["offset"][0] - 5) % 8, (full["offset"][1] - 3) % 8]
