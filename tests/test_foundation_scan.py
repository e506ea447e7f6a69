"""The scan: bad inputs become findings, the cache is hit, checks fire, nothing is modified."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import curator.scan.run as scan_module
from curator.checks.base import ImageCheck
from curator.dataset.workspace import Workspace
from curator.scan.results import ScanSettings
from curator.scan.run import item_sizes, scan


def _noise(path: Path, w: int = 600, h: int = 560, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def _dataset(tmp_path: Path) -> Path:
    concept = tmp_path / "train/10_cat"
    for i in range(4):
        _noise(concept / f"ok{i}.png", seed=i)
    shutil.copy(concept / "ok0.png", concept / "ok0_copy.png")
    Image.open(concept / "ok1.png").save(concept / "same_pixels.webp", lossless=True)
    (concept / "empty.png").write_bytes(b"")
    (concept / "text.jpg").write_text("not an image")
    data = (concept / "ok2.png").read_bytes()
    (concept / "cut.png").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (1, 1)).save(concept / "dot.png")
    Image.new("RGB", (300, 200), (5, 5, 5)).save(concept / "small_gray.png")
    Image.new("RGB", (2400, 400), (200, 30, 30)).save(concept / "wide.png")
    alpha = Image.new("RGBA", (600, 600), (255, 0, 0, 255))
    alpha.paste((0, 0, 0, 0), (0, 0, 300, 600))
    alpha.save(concept / "alpha.png")
    (concept / "ok0.txt").write_text("cat, sitting\n")
    return tmp_path / "train"


#: The codes this area emits; other helpers' checks (captions, blur...) may add findings of their own.
FOUNDATION_CODES = {
    "corrupt", "decompression_bomb", "unreadable", "decode_timeout", "too_small", "extreme_aspect",
    "alpha_channel", "grayscale", "exact_duplicate", "check_error",
}  # fmt: skip


def _ours(findings):  # type: ignore[no-untyped-def]
    return [f for f in findings if f.code in FOUNDATION_CODES]


def _findings(result, rel: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f.code: f.severity.value for f in _ours(result.record(rel).findings)}


@pytest.mark.parametrize("workers", [1, 2])
def test_every_bad_input_is_a_finding(tmp_path: Path, workers: int) -> None:
    root = _dataset(tmp_path)
    before = _hashes(root)
    result = scan(root, ScanSettings(workers=workers, progress=False))
    assert len(result.records) == 13 and result.analysed == 13
    assert _findings(result, "10_cat/empty.png") == {"corrupt": "error"}
    assert _findings(result, "10_cat/text.jpg") == {"corrupt": "error"}
    assert _findings(result, "10_cat/cut.png") == {"corrupt": "error"}
    assert _findings(result, "10_cat/dot.png")["too_small"] == "error"
    assert _findings(result, "10_cat/small_gray.png") == {"too_small": "warning", "grayscale": "info"}
    assert _findings(result, "10_cat/wide.png")["extreme_aspect"] == "warning"
    assert _findings(result, "10_cat/alpha.png") == {"alpha_channel": "warning"}
    copy = _ours(result.record("10_cat/ok0_copy.png").findings)[0]
    assert copy.code == "exact_duplicate" and copy.evidence == {
        "keeper": "10_cat/ok0.png",
        "match": "bytes",
        "group_size": 2,
    }
    pixels = _ours(result.record("10_cat/same_pixels.webp").findings)[0]
    assert pixels.evidence["match"] == "pixels" and pixels.evidence["keeper"] == "10_cat/ok1.png"
    for name in ("ok0.png", "ok1.png", "ok2.png", "ok3.png"):
        assert _findings(result, f"10_cat/{name}") == {}
    assert not result.record("10_cat/cut.png").decoded
    assert item_sizes(result)["10_cat/wide.png"] == (2400, 400)
    assert _hashes(root) == before  # images and captions byte-identical


def test_rescan_hits_cache_and_reanalyses_only_the_changed_file(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    settings = ScanSettings(workers=1, progress=False)
    first = scan(root, settings)
    second = scan(root, settings)
    assert (second.analysed, second.cached) == (0, 13)
    assert second.to_json()["items"] == first.to_json()["items"]  # corrupt files too come back from the cache
    stamp = time.time_ns() + 5_000_000_000
    os.utime(root / "10_cat/ok3.png", ns=(stamp, stamp))
    third = scan(root, settings)
    assert (third.analysed, third.cached) == (1, 12)


def test_read_only_dataset_with_workspace(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    workspace = tmp_path / "ws"
    settings = ScanSettings(workers=1, progress=False, workspace=workspace)
    scan(root, settings)
    assert Workspace.for_dataset(root, workspace).cache_db.exists()
    assert not (root / ".dreamcurate").exists()
    assert scan(root, settings).cached == 13


def test_unwritable_workspace_still_scans(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = scan(root, ScanSettings(workers=1, progress=False, workspace=blocker / "ws"))
    assert result.analysed == 13 and any(f.code == "cache_unavailable" for f in result.findings)


class _Slow(ImageCheck):
    name = "slow_for_test"

    def measure(self, view, params):  # type: ignore[no-untyped-def]
        if view.filename == "ok1.png":
            time.sleep(5)
        return {}


def test_per_file_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _dataset(tmp_path)
    checks = [*scan_module.image_checks(), _Slow()]
    monkeypatch.setattr(scan_module, "image_checks", lambda: checks)
    settings = ScanSettings(workers=1, progress=False, params={"loader": {"timeout_s": 0.5}})
    started = time.perf_counter()
    result = scan(root, settings)
    assert time.perf_counter() - started < 4
    assert _findings(result, "10_cat/ok1.png") == {"decode_timeout": "error"}
    assert result.record("10_cat/ok0.png").decoded


class _Broken(ImageCheck):
    name = "broken_for_test"

    def measure(self, view, params):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    def judge(self, record, params, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")


def test_a_broken_check_does_not_abort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _dataset(tmp_path)
    checks = [*scan_module.image_checks(), _Broken()]
    monkeypatch.setattr(scan_module, "image_checks", lambda: checks)
    result = scan(root, ScanSettings(workers=1, progress=False))
    ok = result.record("10_cat/ok0.png")
    assert ok.decoded and "broken_for_test" in ok.metrics["check_failures"]
    assert [f.code for f in _ours(ok.findings)] == ["check_error"]


def test_worker_crash_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "train"
    for i in range(10):
        _noise(root / f"1_x/{i}.png", 32, 32, seed=i)
    real = scan_module.load_view

    def crashing(path, **kwargs):  # type: ignore[no-untyped-def]
        if path.name == "3.png":
            os._exit(1)  # what a segfaulting decoder looks like to the pool
        return real(path, **kwargs)

    monkeypatch.setattr(scan_module, "load_view", crashing)
    if __import__("multiprocessing").get_start_method() != "fork":
        pytest.skip("the monkeypatch reaches workers only with fork")
    result = scan(root, ScanSettings(workers=2, progress=False))
    assert _findings(result, "1_x/3.png") == {"corrupt": "error"}
    assert all(result.record(f"1_x/{i}.png").decoded for i in range(10) if i != 3)


def test_bomb_and_unreadable_in_a_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import struct
    import zlib

    import curator.images.opening as opening

    concept = tmp_path / "train/1_x"
    _noise(concept / "fine.png", 64, 64)
    _noise(concept / "locked.png", 64, 64)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    (concept / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat)

    def guarded_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied")
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(opening, "open", guarded_open, raising=False)
    result = scan(tmp_path / "train", ScanSettings(workers=1, progress=False))
    assert _findings(result, "1_x/bomb.png") == {"decompression_bomb": "error"}
    assert _findings(result, "1_x/locked.png") == {"unreadable": "error"}
    assert result.record("1_x/fine.png").decoded


def test_scan_from_a_thread_uses_a_pool(tmp_path: Path) -> None:
    import threading

    root = tmp_path / "train"
    for i in range(10):
        _noise(root / f"1_x/{i}.png", 32, 32, seed=i)
    box: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: box.update(result=scan(root, ScanSettings(workers=2, progress=False)))
    )
    worker.start()
    worker.join(120)
    result = box["result"]
    assert result.analysed == 10 and all(r.decoded for r in result.records)  # type: ignore[attr-defined]


def test_discovery_finding_about_an_image_lands_on_its_record(tmp_path: Path) -> None:
    _noise(tmp_path / "train/1_x/a.gif", 64, 64)
    result = scan(tmp_path / "train", ScanSettings(workers=1, progress=False))
    assert [f.code for f in result.record("1_x/a.gif").findings if f.code == "kohya_skips_extension"]
    assert not [f for f in result.findings if f.code == "kohya_skips_extension"]


def test_pixel_identity_decodes_one_file_per_set_of_byte_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three byte copies and a lossless re-encode of one image: the second stage decodes one byte copy and the
    re-encode (not all four); a set of byte copies alone is not decoded at all. The findings are the same."""
    from curator.checks import exact_duplicate

    concept = tmp_path / "train/10_cat"
    _noise(concept / "a.png", seed=1)
    for name in ("b.png", "c.png"):
        shutil.copy(concept / "a.png", concept / name)
    Image.open(concept / "a.png").save(concept / "d.webp", lossless=True)
    _noise(concept / "e.png", seed=2)
    shutil.copy(concept / "e.png", concept / "f.png")
    decoded: list[str] = []
    real = exact_duplicate.pixel_digest

    def counting(path: Path, *args: object) -> str | None:
        decoded.append(path.name)
        return real(path)

    monkeypatch.setattr(exact_duplicate, "pixel_digest", counting)
    result = scan(tmp_path / "train", ScanSettings(workers=1, progress=False))
    assert len(decoded) == 2 and "d.webp" in decoded and not {"e.png", "f.png"} & set(decoded)
    found = {
        r.item.rel.split("/")[-1]: (f.evidence["match"], f.evidence["keeper"].split("/")[-1])
        for r in result.records
        for f in r.findings
        if f.code == "exact_duplicate"
    }
    assert found == {"b.png": ("bytes", "a.png"), "c.png": ("bytes", "a.png"), "d.webp": ("pixels", "a.png"),
                     "f.png": ("bytes", "e.png")}  # fmt: skip
