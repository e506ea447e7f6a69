"""One way to open an image: the loader, thumbnails and the trainer see the same upright, white-composited picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.images.loader import load_view
from curator.images.opening import LoadError, header_size, open_rgb, thumbnail
from curator.report.thumbs import thumbnail_uri


def _rotated_jpeg(path: Path) -> Path:
    """A 200x100 image stored with EXIF orientation 6 (shown 100x200): left half red, right half blue as stored."""
    img = Image.new("RGB", (200, 100), (255, 0, 0))
    img.paste((0, 0, 255), (100, 0, 200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, "JPEG", quality=95, exif=exif)
    return path


def test_exif_orientation_everywhere(tmp_path: Path) -> None:
    path = _rotated_jpeg(tmp_path / "r.jpg")
    assert header_size(path) == (100, 200)
    assert open_rgb(path).size == (100, 200)
    thumb = thumbnail(path, 50)
    assert thumb is not None and thumb.size == (25, 50)
    view = load_view(path)
    assert (view.width, view.height) == (100, 200) and view.rgb.shape[:2] == (200, 100)
    # orientation 6 turns the stored left (red) half to the top
    assert np.asarray(open_rgb(path))[10, 50, 0] > 200 and view.rgb[10, 50, 0] > 200


def test_transparency_on_white_for_loader_thumbnail_and_trainer(tmp_path: Path) -> None:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    img.paste((200, 10, 10, 255), (0, 0, 32, 64))
    img.save(tmp_path / "a.png")
    trained = np.asarray(open_rgb(tmp_path / "a.png"))
    assert tuple(trained[5, 50]) == (255, 255, 255) and tuple(trained[5, 5]) == (200, 10, 10)
    assert tuple(load_view(tmp_path / "a.png").rgb[5, 50]) == (255, 255, 255)
    thumb = thumbnail(tmp_path / "a.png", 32)
    assert thumb is not None and min(np.asarray(thumb)[2, 30]) > 240


def test_bomb_refused_before_decoding(tmp_path: Path) -> None:
    Image.new("L", (400, 300)).save(tmp_path / "b.png")
    with pytest.raises(LoadError) as info:
        open_rgb(tmp_path / "b.png", max_pixels=1000)
    assert info.value.code == "decompression_bomb"
    assert thumbnail(tmp_path / "b.png", 32, max_pixels=1000) is None


def test_reduced_jpeg_decode_still_covers_the_target(tmp_path: Path) -> None:
    Image.new("RGB", (1600, 1200), (90, 120, 30)).save(tmp_path / "big.jpg", quality=90)
    assert open_rgb(tmp_path / "big.jpg", (400, 300)).size == (400, 300)  # a 1/4 DCT decode, exactly covering
    assert open_rgb(tmp_path / "big.jpg", (401, 300)).size == (800, 600)
    assert open_rgb(tmp_path / "big.jpg").size == (1600, 1200)


def test_unreadable_files_give_no_thumbnail(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not an image")
    assert thumbnail(tmp_path / "x.png", 32) is None and thumbnail_uri(tmp_path / "x.png") is None
    assert header_size(tmp_path / "x.png") is None
