"""``dreamcurate scan`` and ``dreamcurate demo``: exit codes, JSON, and no user file modified."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.dataset.sample import make_sample_dataset


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def _dataset(tmp_path: Path, bad: bool) -> Path:
    concept = tmp_path / "train/5_thing"
    concept.mkdir(parents=True)
    Image.new("RGB", (640, 640), (10, 120, 200)).save(concept / "a.png")
    (concept / "a.txt").write_text("thing, blue\n")
    if bad:
        (concept / "b.png").write_bytes(b"\x89PNG broken")
    return tmp_path / "train"


def test_scan_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = _dataset(tmp_path / "c", bad=False)
    broken = _dataset(tmp_path / "b", bad=True)
    assert runner.invoke(cli, ["scan", str(clean), "--no-progress", "--fail-on", "error"]).exit_code == 0
    assert runner.invoke(cli, ["scan", str(broken), "--no-progress"]).exit_code == 0
    failed = runner.invoke(cli, ["scan", str(broken), "--no-progress", "--fail-on", "error"])
    assert failed.exit_code == 1 and "corrupt" in failed.output
    assert runner.invoke(cli, ["scan", str(broken), "--fail-on", "warning"]).exit_code == 1


def test_missing_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "does not exist" in result.output


def test_json_to_stdout_is_only_json(tmp_path: Path) -> None:
    root = _dataset(tmp_path, bad=True)
    before = _hashes(root)
    result = CliRunner().invoke(cli, ["scan", str(root), "--json", "-", "--workers", "1"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["schema"] == "dreamcurate.scan/1"
    items = {item["path"]: item for item in doc["items"]}
    assert items["5_thing/b.png"]["findings"][0]["code"] == "corrupt"
    assert items["5_thing/a.png"]["width"] == 640 and items["5_thing/a.png"]["concept"] == "thing"
    assert _hashes(root) == before


def test_json_file_and_summary(tmp_path: Path) -> None:
    root = _dataset(tmp_path, bad=False)
    out = tmp_path / "scan.json"
    result = CliRunner().invoke(cli, ["scan", str(root), "--json", str(out)])
    assert result.exit_code == 0 and "thing" in result.output
    assert json.loads(out.read_text())["summary"]["items"] == 1


def test_demo_generates_scans_and_is_deterministic(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--no-train", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "demo/train"
    first = _hashes(root)
    assert len([p for p in first if p.endswith((".png", ".jpg"))]) == 25
    assert "too_small" in result.output and "exact_duplicate" in result.output
    again = make_sample_dataset(tmp_path / "other")
    assert _hashes(again) == first  # same seed, same bytes
    rerun = CliRunner().invoke(cli, ["demo", "--no-train", "--out", str(tmp_path / "demo")])
    assert "0 analysed, 25 from cache" in rerun.output  # unchanged files are not rewritten


def test_demo_module_does_not_import_torch() -> None:
    code = "import trainer.commands.demo, sys; print(any(m.split('.')[0] == 'torch' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_non_utf8_file_name_through_the_cli(tmp_path: Path) -> None:
    import os

    root = _dataset(tmp_path, bad=False)
    raw = os.fsencode(root / "5_thing") + b"/caf\xe9.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(raw, format="PNG")
    runner = CliRunner()
    summary = runner.invoke(cli, ["scan", str(root), "--workers", "1"])
    assert summary.exit_code == 0, summary.output
    assert "caf\\xe9.png" in summary.output  # the byte that is not UTF-8 shown as an escape
    doc = json.loads(runner.invoke(cli, ["scan", str(root), "--json", "-"]).stdout)
    paths = [item["path"] for item in doc["items"]]
    assert os.fsdecode(b"5_thing/caf\xe9.png") in paths


def test_scan_summary_says_what_the_export_does_as_the_curation_does(tmp_path: Path) -> None:
    """The summary's export column is read from the curation: a duplicate warning is left out (not 'kept' because it is
    a warning), and the numbers are the ones `scan --json` gives for the curation."""
    import numpy as np

    concept = tmp_path / "ds/3_thing"
    concept.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)).save(concept / f"{i}.png")
    (concept / "copy.png").write_bytes(
        (concept / "0.png").read_bytes()
    )  # exact duplicate: a warning, left out
    root = tmp_path / "ds"
    runner = CliRunner()
    shown = runner.invoke(cli, ["scan", str(root), "--no-progress", "--workers", "1"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    data = json.loads(runner.invoke(cli, ["scan", str(root), "--json", "-", "--workers", "1"]).output)
    row = next(line for line in shown.output.splitlines() if line.strip().startswith("exact_duplicate"))
    assert "warning" in row and "1 left out" in row and "kept" not in row.split("│")[3]
    assert data["curation"]["left_out"] == {"duplicate": 1}
