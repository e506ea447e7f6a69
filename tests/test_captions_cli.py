"""`dreamcurate tags` audit output and the caption findings inside `scan`'s JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.scan.results import ScanSettings
from curator.scan.run import scan


def _dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "3_sks"
    folder.mkdir(parents=True)
    captions = {
        "a": "sks, 1girl, smile",
        "b": "1girl, sks, smile, smile",
        "c": "sks, 1girl, " + ", ".join(f"extra tag number {i}" for i in range(20)),
        "d": None,
    }
    for name, text in captions.items():
        Image.new("RGB", (96, 64), (40 * len(name), 90, 200)).save(folder / f"{name}.png")
        if text is not None:
            (folder / f"{name}.txt").write_text(text)
    return tmp_path / "train"


def test_tags_audit_view_and_json(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    runner = CliRunner()
    out = runner.invoke(cli, ["tags", str(root)])
    assert out.exit_code == 0, out.output
    assert "keep_tokens for sks: advise" in out.output and "caption_too_long" in out.output
    data = json.loads(runner.invoke(cli, ["tags", str(root), "--json", "-"]).output)
    concept = data["concepts"][0]
    assert concept["name"] == "sks" and concept["captions"] == 3
    assert {t["tag"]: t["captions"] for t in concept["tags"]}["smile"] == 2
    assert concept["keep_tokens"]["distribution"][0]["n"] == 1
    codes = {f["code"] for f in data["findings"]}
    assert {"caption_missing", "caption_too_long", "trigger_not_first", "tag_duplicate"} <= codes
    too_long = next(f for f in data["findings"] if f["code"] == "caption_too_long")
    assert too_long["evidence"]["cut_tags"][-1] == "extra tag number 19"


def test_scan_json_carries_caption_findings(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    result = scan(root, ScanSettings(workers=1, progress=False, workspace=tmp_path / "ws"))
    data = result.to_json()
    per_item = {f["code"]: item["path"] for item in data["items"] for f in item["findings"]}
    assert per_item["trigger_not_first"] == "3_sks/b.png"
    assert per_item["caption_missing"] == "3_sks/d.png"
    assert data["summary"]["counts"]["caption_too_long"] == 1
