"""Safe loading: every bad-input kind becomes a LoadError with its code; every mode becomes a valid view."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import curator.images.opening as opening
from curator.images.loader import LoadError, load_view, view_from_image
from curator.images.view import ANALYSIS_SIZE, DETAIL_SIZE


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _code(path: Path, **kwargs: int) -> str:
    with pytest.raises(LoadError) as info:
        load_view(path, **kwargs)
    assert info.value.message
    return info.value.code


def test_zero_byte_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    assert _code(tmp_path / "a.png") == "corrupt"


def test_not_an_image_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_text("hello, I am text")
    with pytest.raises(LoadError) as info:
        load_view(tmp_path / "a.jpg")
    assert (info.value.code, info.value.evidence["reason"]) == ("corrupt", "not_an_image")


def test_truncated_is_corrupt(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _noise(200, 150).save(buf, "JPEG", quality=90)
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(LoadError) as info:
        load_view(tmp_path / "t.jpg")
    assert (info.value.code, info.value.evidence["reason"]) == ("corrupt", "truncated")


def test_bomb_refused_from_header_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(_png_header(5000, 5000))  # 25 Mpx declared, a few bytes of data
    with pytest.raises(LoadError) as info:
        load_view(tmp_path / "b.png", max_pixels=1_000_000)
    assert info.value.code == "decompression_bomb"
    assert info.value.evidence == {"width": 5000, "height": 5000, "pixels": 25_000_000, "limit": 1_000_000}


def test_huge_declared_size_is_a_bomb_with_default_limit(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(_png_header(40000, 40000))
    assert _code(tmp_path / "b.png") == "decompression_bomb"


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.png"
    _noise(10, 10).save(path)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(opening, "open", denied, raising=False)
    assert _code(path) == "unreadable"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_by_permissions(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    _noise(10, 10).save(path)
    path.chmod(0)
    try:
        assert _code(path) == "unreadable"
    finally:
        path.chmod(0o644)


def test_one_pixel_decodes(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "one.png")
    view = load_view(tmp_path / "one.png")
    assert (view.width, view.height, view.rgb.shape) == (1, 1, (1, 1, 3))


@pytest.mark.skipif(os.name != "posix", reason="bytes file names are a POSIX thing")
def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    _noise(20, 10).save(raw, format="PNG")
    path = Path(os.fsdecode(raw))
    view = load_view(path)
    assert view.width == 20 and view.filename == os.fsdecode(b"caf\xe9.png")


@pytest.mark.parametrize(
    "mode, alpha",
    [("P", False), ("CMYK", False), ("LA", True), ("L", False), ("RGBA", True), ("I;16", False)],
)
def test_modes_convert(tmp_path: Path, mode: str, alpha: bool) -> None:
    base = _noise(64, 48)
    if mode == "I;16":
        img = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))
    else:
        img = base.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    view = load_view(path)
    assert view.mode == img.mode
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (48, 64, 3)
    assert view.gray.dtype == np.uint8 and view.gray.shape == (48, 64)
    assert (view.alpha is not None) == alpha
    if mode == "I;16":
        assert view.rgb.max() > 200  # scaled from 16 bits, not clipped to white or black
        assert view.rgb.min() < 10


def test_alpha_composited_on_white_as_training_sees_it(tmp_path: Path) -> None:
    # black stored under alpha 0 must not show: the trainer composites on white
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img.save(tmp_path / "a.png")
    view = load_view(tmp_path / "a.png")
    assert view.rgb.min() == 255 and view.alpha is not None and view.alpha.max() == 0


def test_exif_orientation_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0131] = "Photoshop"
    _noise(200, 100).save(tmp_path / "r.jpg", exif=exif)
    view = load_view(tmp_path / "r.jpg")
    assert (view.width, view.height) == (100, 200)
    assert view.rgb.shape == (200, 100, 3)
    assert view.exif["Software"] == "Photoshop"
    assert view.native_gray is not None and view.native_gray.shape == (100, 100)  # before rotation


def test_metadata_text_quant_and_hashes(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, Steps: 20, Sampler: Euler")
    img = _noise(80, 60)
    img.save(tmp_path / "a.png", pnginfo=info)
    img.save(tmp_path / "b.png")
    img.save(tmp_path / "c.jpg", quality=30)
    a, b, c = (load_view(tmp_path / n) for n in ("a.png", "b.png", "c.jpg"))
    assert a.text["parameters"].startswith("a cat")
    assert a.sha256 != b.sha256 and a.pixel_fingerprint == b.pixel_fingerprint  # same pixels, different bytes
    assert a.file_size == (tmp_path / "a.png").stat().st_size
    assert a.quant_tables is None and c.quant_tables is not None and len(c.quant_tables[0]) == 64
    assert c.format == "JPEG"


def test_gif_first_frame_and_frame_count(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (30, 20), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    view = load_view(tmp_path / "a.gif")
    assert view.frames == 3
    assert view.rgb[..., 0].mean() > 200 and view.rgb[..., 1].mean() < 50


def test_large_image_bounded_analysis_size(tmp_path: Path) -> None:
    _noise(1400, 700).save(tmp_path / "big.png")
    view = load_view(tmp_path / "big.png")
    assert max(view.rgb.shape[:2]) == ANALYSIS_SIZE and (view.width, view.height) == (1400, 700)
    assert view.native_gray is not None and view.native_gray.shape == (700, 700)
    assert view.draft_scale == 1


def test_gray_pyramid_and_colour_level_agree(tmp_path: Path) -> None:
    # a smooth colour ramp with a transparent corner, sideways in EXIF: every level upright, the same size, on white
    y, x = np.mgrid[0:900, 0:1500]
    pixels = np.stack([x * 255 // 1500, y * 255 // 900, np.full_like(x, 90), np.full_like(x, 255)], -1)
    pixels[:300, :300, 3] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels.astype(np.uint8), "RGBA").save(tmp_path / "ramp.png", exif=exif)
    view = load_view(tmp_path / "ramp.png")
    assert view.detail.size == (614, DETAIL_SIZE)  # upright: 900 x 1500 brought to a long side of 1024
    assert view.gray.shape == (ANALYSIS_SIZE, 307) and view.rgb.shape == (ANALYSIS_SIZE, 307, 3)
    luma = view.rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    off = np.abs(luma - view.gray)
    # the colour level's luma is the gray level (the gray is filtered in two steps: apart along the alpha edge only)
    assert np.median(off) <= 1.0 and np.count_nonzero(off > 2.0) <= 2 * ANALYSIS_SIZE // 5
    assert (
        view.gray[:90, -90:].min() == 255 and view.rgb[:90, -90:].min() == 255
    )  # transparent corner on white
    sample = view.color_sample()
    assert max(sample.shape[:2]) == 256 and sample[:40, -40:].min() == 255


def test_scan_checks_read_gray_levels_only(tmp_path: Path) -> None:
    # the colour level costs a resize of the whole decoded image: no scan check may ask for it
    from curator.checks import image_checks

    _noise(1400, 700).save(tmp_path / "big.png")
    view = load_view(tmp_path / "big.png")
    for check in image_checks():
        check.measure(view, check.defaults)
    assert "rgb" not in view.extra


def test_very_large_jpeg_uses_draft(tmp_path: Path) -> None:
    Image.new("RGB", (8400, 200), (10, 200, 30)).save(tmp_path / "wide.jpg", quality=80)
    view = load_view(tmp_path / "wide.jpg")
    assert view.draft_scale >= 2 and (view.width, view.height) == (8400, 200)


def test_view_from_image_in_memory() -> None:
    view = view_from_image(_noise(100, 50), filename="mem.png")
    assert (view.width, view.height) == (100, 50) and view.sha256 and view.pixel_fingerprint


def test_tiny_file_declaring_a_hundred_megapixels_is_a_bomb(tmp_path: Path) -> None:
    # Under the 178 Mpx limit but above Pillow's warning size, from a few bytes: refused by its expansion ratio.
    (tmp_path / "b.png").write_bytes(_png_header(10000, 10000))
    with pytest.raises(LoadError) as info:
        load_view(tmp_path / "b.png")
    assert info.value.code == "decompression_bomb" and info.value.evidence["expansion"] > 1000
