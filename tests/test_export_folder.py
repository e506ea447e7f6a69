"""Export: the curated Kohya folder, manifest, configs, policy, decisions, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tomllib

from curator.dataset.workspace import Workspace
from curator.export.folder import ExportError, ExportOptions, export_dataset
from curator.findings import Finding, Severity
from curator.review.curation import Policy, build_curation
from curator.review.decisions import DecisionStore, cluster_key
from tests._report_fixtures import build_result, dup, tree_digest

BLUR = Finding("blurry", Severity.WARNING, "Image looks out of focus", {"metric": "blur", "threshold": 1})
CORRUPT = Finding("too_small", Severity.ERROR, "Too small", {"short_side": 40, "threshold": 512})


def _result(tmp_path: Path, reg: bool = False):  # type: ignore[no-untyped-def]
    files = ["a.png", "b.png", "c.png", "d.png"]
    findings = {
        "10_cat/b.png": [BLUR],
        "10_cat/c.png": [CORRUPT],
        "10_cat/d.png": [dup("10_cat/a.png")],
    }
    return build_result(
        tmp_path / "data",
        {"cat": (10, files), "dog": (5, ["x.png", "y.png"])},
        findings,
        reg={"person": (1, ["r1.png", "r2.png"])} if reg else None,
    )


def test_default_policy_and_manifest(tmp_path: Path) -> None:
    result = _result(tmp_path, reg=True)
    before = tree_digest(tmp_path / "data") | tree_digest(tmp_path / "reg")
    report = export_dataset(build_curation(result), tmp_path / "out", ExportOptions())
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "img" / "10_cat").glob("*.png")) == ["a.png", "b.png"]
    assert (out / "img" / "10_cat" / "a.txt").read_text() == (tmp_path / "data/10_cat/a.txt").read_text()
    assert sorted(p.name for p in (out / "reg" / "1_person").glob("*.png")) == ["r1.png", "r2.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    by_path = {i["path"]: i for i in manifest["items"]}
    assert set(by_path) == {r.item.rel for r in result.records}  # every source item accounted for
    assert by_path["10_cat/c.png"]["kept"] is False and by_path["10_cat/c.png"]["rule"] == "error"
    assert (
        by_path["10_cat/d.png"]["rule"] == "duplicate" and "10_cat/a.png" in by_path["10_cat/d.png"]["reason"]
    )
    assert by_path["10_cat/b.png"]["kept"] is True
    files = {r.item.rel: r.item.path for r in result.records}
    assert all(
        i["sha256"] == hashlib.sha256(files[i["path"]].read_bytes()).hexdigest() for i in manifest["items"]
    )
    assert report.kept == 6 and report.dropped == 2
    # originals untouched, and still there (linked or copied, never moved)
    assert tree_digest(tmp_path / "data") | tree_digest(tmp_path / "reg") == before


def test_strict_drops_warnings(tmp_path: Path) -> None:
    curation = build_curation(_result(tmp_path), policy=Policy(strict=True))
    report = export_dataset(curation, tmp_path / "out", ExportOptions())
    assert report.verdicts["10_cat/b.png"].kept is False and report.verdicts["10_cat/b.png"].rule == "warning"


def test_dataset_toml_names_exactly_the_exported_folders(tmp_path: Path) -> None:
    export_dataset(build_curation(_result(tmp_path, reg=True)), tmp_path / "out", ExportOptions())
    out = tmp_path / "out"
    config = tomllib.loads((out / "dataset.toml").read_text())
    subsets = config["datasets"][0]["subsets"]
    named = {(Path(s["image_dir"]), s["num_repeats"], s["is_reg"]) for s in subsets}
    on_disk = {(p, int(p.name.split("_")[0]), p.parent.name == "reg") for p in out.glob("*/*") if p.is_dir()}
    assert named == on_disk
    assert config["datasets"][0]["resolution"] == 512 and config["general"]["caption_extension"] == ".txt"
    train = tomllib.loads((out / "train.toml").read_text())
    assert train["train_data_dir"] == str(out / "img") and train["reg_data_dir"] == str(out / "reg")
    # the caption audit's keep_tokens advice: every caption starts with the trigger (the concept name)
    keep = {Path(s["image_dir"]).name: s.get("keep_tokens") for s in subsets}
    assert keep == {"10_cat": 1, "5_dog": 1, "1_person": None} and train["keep_tokens"] == 1


def test_train_toml_is_read_by_the_trainer_config(tmp_path: Path) -> None:
    config_mod = pytest.importorskip("curator.settings.config")
    curation = build_curation(_result(tmp_path))
    export_dataset(curation, tmp_path / "out", ExportOptions(base_model="base.safetensors"))
    config = config_mod.read_config(tmp_path / "out" / "train.toml")
    assert config.train_data_dir == str(tmp_path / "out" / "img")
    assert config.pretrained_model_name_or_path == "base.safetensors"


def test_decisions_are_honoured(tmp_path: Path) -> None:
    result = _result(tmp_path)
    store = DecisionStore(Workspace.for_dataset(tmp_path / "data"))
    store.set("10_cat/c.png", "keep", "size is fine for me")
    store.set("10_cat/a.png", "drop", "wrong cat")
    store.set_keeper(cluster_key(["10_cat/a.png", "10_cat/d.png"]), "10_cat/d.png")
    store.set_caption("10_cat/b.png", "cat, edited <caption>")
    original_caption = (tmp_path / "data/10_cat/b.txt").read_bytes()
    report = export_dataset(build_curation(result, store), tmp_path / "out", ExportOptions())
    v = report.verdicts
    assert v["10_cat/c.png"].kept and v["10_cat/c.png"].rule == "review"
    assert not v["10_cat/a.png"].kept and "wrong cat" in v["10_cat/a.png"].reason
    assert v["10_cat/d.png"].kept  # chosen as the keeper in review
    assert (tmp_path / "out/img/10_cat/b.txt").read_text() == "cat, edited <caption>"
    assert (tmp_path / "data/10_cat/b.txt").read_bytes() == original_caption
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert [i["caption_edited"] for i in manifest["items"] if i["path"] == "10_cat/b.png"] == [True]


def test_existing_out_needs_force_and_is_replaced(tmp_path: Path) -> None:
    result = build_curation(_result(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ExportError, match="--force"):
        export_dataset(result, out, ExportOptions())
    assert (out / "old.txt").exists()
    with pytest.raises(
        ExportError, match="not an earlier dreamcurate export"
    ):  # a user's folder is never deleted
        export_dataset(result, out, ExportOptions(force=True))
    assert (out / "old.txt").exists()
    (out / "manifest.json").write_text('{"schema": "dreamcurate.export/1"}')  # an earlier export's folder
    (out / "img").mkdir()
    (out / "img" / "stale.png").write_bytes(b"from the earlier export")
    report = export_dataset(result, out, ExportOptions(force=True))
    # what the earlier export wrote is replaced; a file it did not write stays
    assert not (out / "img" / "stale.png").exists() and (out / "manifest.json").exists()
    assert (out / "old.txt").read_text() == "old" and report.kept_entries == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_refuses_to_export_over_the_dataset(tmp_path: Path) -> None:
    result = build_curation(_result(tmp_path))
    with pytest.raises(ExportError, match="contains the dataset"):
        export_dataset(result, tmp_path, ExportOptions(force=True))
    assert (tmp_path / "data/10_cat/a.png").exists()


def test_failure_mid_export_leaves_no_partial_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import curator.export.folder as export_mod

    result = build_curation(_result(tmp_path))
    calls = {"n": 0}
    real = export_mod._place_image

    def failing(src: Path, dst: Path, hardlink: bool) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(src, dst, hardlink)

    monkeypatch.setattr(export_mod, "_place_image", failing)
    with pytest.raises(OSError):
        export_dataset(result, tmp_path / "out", ExportOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    import curator.export.folder as ex
    from curator.review.curation import build_curation
    from tests._report_fixtures import build_result
    tmp = Path({tmp!r})
    result = build_curation(build_result(tmp / "data", {{"cat": (3, ["a.png", "b.png", "c.png", "d.png"])}}))
    real = ex._place_image
    def slow(src, dst, hardlink):
        out = real(src, dst, hardlink)
        (tmp / "started").touch()
        time.sleep(30)
        return out
    ex._place_image = slow
    ex.export_dataset(result, tmp / "out", ex.ExportOptions(force=True))
    """
)


def test_sigkill_mid_export_leaves_old_out_or_nothing(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[1])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "previous.txt").write_text("previous export")
    (tmp_path / "out" / "manifest.json").write_text('{"schema": "dreamcurate.export/1"}')
    script = _KILL_SCRIPT.format(repo=repo, tmp=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, "export subprocess ended early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "previous.txt"]
    # the next export cleans up what the killed one left beside OUT
    from tests._report_fixtures import build_result as again

    result = build_curation(again(tmp_path / "data2", {"cat": (3, ["a.png"])}))
    export_dataset(result, tmp_path / "out", ExportOptions(force=True))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_manifest_digests_come_from_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's sha256 of each image is the scan's digest of the bytes it read, and the upright copies follow
    the scan's reading of the EXIF orientation (one truth, and no second read of every file); only a file the scan
    could not decode is read for its digest."""
    import numpy as np
    from PIL import Image

    from curator.export import folder
    from curator.scan.results import ScanSettings
    from curator.scan.run import scan

    concept = tmp_path / "data/10_cat"
    concept.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            concept / f"{i}.png"
        )
    (concept / "broken.png").write_bytes(b"not an image")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the export writes it upright, from the scan's reading of the tag
    Image.open(concept / "0.png").save(concept / "sideways.png", exif=exif.tobytes())
    read: list[str] = []
    real = folder.sha256_file
    monkeypatch.setattr(folder, "sha256_file", lambda path: read.append(path.name) or real(path))
    result = scan(tmp_path / "data", ScanSettings(workers=1, progress=False))
    export_dataset(build_curation(result), tmp_path / "out", ExportOptions())
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    for item in manifest["items"]:
        assert item["sha256"] == hashlib.sha256((tmp_path / "data" / item["path"]).read_bytes()).hexdigest()
    assert read == ["broken.png"]
    upright = {i["path"]: i["upright_copy"] for i in manifest["items"] if i["upright_copy"]}
    assert upright == {"10_cat/sideways.png": "EXIF orientation 6, which Kohya does not apply"}
    assert result.record("10_cat/sideways.png").metrics["exif_orientation"] == 6


def _sideways_dataset(root: Path, n: int) -> Path:
    """``n`` photos stored sideways (EXIF orientation 6) and two plain ones."""
    import numpy as np
    from PIL import Image

    concept = root / "10_cat"
    concept.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    for i in range(n + 2):
        pixels = np.random.default_rng(i).integers(0, 256, (256 + i, 320, 3), dtype=np.uint8)
        extra = {"exif": exif.tobytes()} if i < n else {}
        Image.fromarray(pixels).save(concept / f"{i:02d}.jpg", quality=90, **extra)
    return root


def test_upright_copies_on_threads_equal_one_by_one(tmp_path: Path) -> None:
    """The upright copies written on threads are the pixels ImageOps.exif_transpose gives, each under its own
    name, and the links beside them are untouched sources."""
    from PIL import Image, ImageOps

    from curator.export import folder
    from curator.scan.results import ScanSettings
    from curator.scan.run import scan

    root = _sideways_dataset(tmp_path / "data", 9)
    result = scan(root, ScanSettings(workers=1, progress=False))
    report = export_dataset(build_curation(result), tmp_path / "out", ExportOptions(progress=True))
    assert report.converted == 9 and report.linked + report.copied == 2 and folder.UPRIGHT_THREADS > 1
    for i in range(11):
        source = root / "10_cat" / f"{i:02d}.jpg"
        exported = tmp_path / "out/img/10_cat" / (f"{i:02d}.png" if i < 9 else f"{i:02d}.jpg")
        with Image.open(source) as src, Image.open(exported) as out:
            assert out.size == ((256 + i, 320) if i < 9 else (320, 256 + i))
            assert ImageOps.exif_transpose(src).tobytes() == out.convert("RGB").tobytes()


def test_a_failing_upright_copy_leaves_no_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curator.export import folder
    from curator.scan.results import ScanSettings
    from curator.scan.run import scan

    root = _sideways_dataset(tmp_path / "data", 6)
    result = scan(root, ScanSettings(workers=1, progress=False))
    real = folder._upright_copy

    def failing(src: Path, dst: Path) -> None:
        if src.name == "03.jpg":
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(folder, "_upright_copy", failing)
    with pytest.raises(OSError, match="disk full"):
        export_dataset(build_curation(result), tmp_path / "out", ExportOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
