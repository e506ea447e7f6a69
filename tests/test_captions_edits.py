"""Tag batch edits: dry run writes nothing, apply + undo round-trip, images untouched, interrupted apply is safe."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from curator.captions import edit as tagedit
from curator.captions.edit import TagEdits, apply_changes, edit_line, edit_text, plan_changes, undo_last
from curator.cli import cli
from curator.dataset.discover import discover
from curator.dataset.workspace import Workspace

CAPTIONS = {
    "a": "smile, sks, 1girl, blue_eyes, blue eyes\nsecond line kept\n",
    "b": "sks, 1girl, hat",
    "c": "1girl, (hat:1.2), outdoors\r\n",
    "d": "sks ||| smile, smile ||| best quality",
}


def _dataset(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    folder = root / "5_sks"
    folder.mkdir(parents=True)
    for name, text in CAPTIONS.items():
        Image.new("RGB", (64, 48), (10, 20, 30)).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_bytes(text.encode())
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def test_edit_line_rules() -> None:
    assert edit_line("a, b, a, B", TagEdits(dedupe=True)) == "a, b"
    assert edit_line("x, sks, y", TagEdits(move_to_front=("sks",))) == "sks, x, y"
    assert edit_line("x, y", TagEdits(move_to_front=("a", "y"))) == "y, x"
    assert edit_line("x, y", TagEdits(add_trigger="sks")) == "sks, x, y"
    assert edit_line("ohwx woman, y", TagEdits(add_trigger="ohwx")) == "ohwx woman, y"  # already there
    assert edit_line("1girl, (hat:1.2)", TagEdits(replace=(("hat", "cap"),))) == "1girl, cap"
    assert edit_line("a, blue_eyes", TagEdits(remove=("Blue Eyes",))) == "a"
    assert edit_line("a ||| b, sks ||| c", TagEdits(move_to_front=("sks",))) == "sks, a ||| b ||| c"
    assert edit_line("a,b,  c", TagEdits(remove=("zzz",))) == "a,b,  c"  # nothing changes: text untouched
    assert edit_text("a, a\r\nrest\n", TagEdits(dedupe=True)) == "a\r\nrest\n"


def test_dry_run_writes_nothing_and_apply_undo_round_trip(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    before = _snapshot(root)
    runner = CliRunner()
    args = ["tags", str(root), "--dedupe", "--move-to-front", "sks", "--replace", "hat=cap"]
    dry = runner.invoke(cli, args)
    assert dry.exit_code == 0, dry.output
    assert "+sks, smile, 1girl, blue_eyes" in dry.output and "Dry run" in dry.output
    assert _snapshot(root) == before and not (root / ".dreamcurate" / "journal").exists()

    applied = runner.invoke(cli, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    after = _snapshot(root)
    folder = root / "5_sks"
    assert (folder / "a.txt").read_text() == "sks, smile, 1girl, blue_eyes\nsecond line kept\n"
    assert (folder / "c.txt").read_bytes() == b"1girl, cap, outdoors\r\n"
    assert (folder / "d.txt").read_text() == "sks ||| smile ||| best quality"
    images = [k for k in before if k.endswith(".png")]
    assert all(before[k] == after[k] for k in images)  # images byte-identical

    undone = runner.invoke(cli, ["tags", str(root), "--undo"])
    assert undone.exit_code == 0, undone.output
    assert _snapshot(root) == before
    again = runner.invoke(cli, ["tags", str(root), "--undo"])
    assert again.exit_code == 1 and "Nothing to undo" in again.output


def test_json_edit_plan(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    out = CliRunner().invoke(cli, ["tags", str(root), "--add-trigger", "sks", "--json", "-"])
    data = json.loads(out.output)
    assert data["applied"] is False and [c["path"] for c in data["changes"]] == ["5_sks/c.png"]
    assert data["changes"][0]["new"].startswith("sks, 1girl")


def test_interrupted_apply_leaves_old_or_new_and_undo_restores(tmp_path: Path, monkeypatch) -> None:
    root = _dataset(tmp_path)
    before = _snapshot(root)
    ws = Workspace.for_dataset(root)
    changes, _ = plan_changes(discover(root).items, TagEdits(dedupe=True, add_trigger="sks", remove=("hat",)))
    assert len(changes) == 4
    real_write = tagedit.fsutil.atomic_write_bytes
    calls = {"n": 0}

    def failing(path: Path, data: bytes) -> None:
        if path.suffix == ".txt":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("disk full (injected)")
        real_write(path, data)

    monkeypatch.setattr(tagedit.fsutil, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="injected"):
        apply_changes(changes, ws)
    monkeypatch.setattr(tagedit.fsutil, "atomic_write_bytes", real_write)
    states = []
    for c in changes:
        now = c.path.read_bytes()
        assert now in (c.old, c.new)
        states.append(now == c.new)
    assert states == [True, True, False, False]
    assert not list(c.path.parent.glob(".*.tmp"))  # no temp file left behind
    journal = tagedit.journals(ws)[-1]
    assert journal.state == "pending"
    result = undo_last(ws)
    assert len(result.restored) == 2 and len(result.unchanged) == 2
    assert _snapshot(root) == before


def test_apply_refuses_changed_caption_and_undo_keeps_later_edits(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    ws = Workspace.for_dataset(root)
    changes, _ = plan_changes(discover(root).items, TagEdits(dedupe=True))
    changes[0].path.write_text("edited meanwhile")
    with pytest.raises(tagedit.EditConflict):
        apply_changes(changes, ws)
    assert not tagedit.journals(ws)
    changes, _ = plan_changes(discover(root).items, TagEdits(add_trigger="zz"))
    apply_changes(changes, ws)
    changes[0].path.write_text("user edit after apply")
    result = undo_last(ws)
    assert result.conflicts == [changes[0].rel]
    assert changes[0].path.read_text() == "user edit after apply"
    assert undo_last(ws, force=True).restored == [changes[0].rel]


def test_usage_errors(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["tags", str(root), "--apply"]).exit_code == 2
    assert runner.invoke(cli, ["tags", str(root), "--replace", "nonsense"]).exit_code == 2
    assert runner.invoke(cli, ["tags", str(tmp_path / "nope")]).exit_code == 2


def test_edits_limited_to_a_concept(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    other = root / "2_other"
    other.mkdir()
    Image.new("RGB", (8, 8)).save(other / "x.png")
    (other / "x.txt").write_text("hat, smile")
    runner = CliRunner()
    out = runner.invoke(cli, ["tags", str(root), "--add-trigger", "ohwx", "--concept", "other", "--apply"])
    assert out.exit_code == 0, out.output
    assert (other / "x.txt").read_text() == "ohwx, hat, smile"
    assert (root / "5_sks" / "b.txt").read_text() == CAPTIONS["b"]
    assert runner.invoke(cli, ["tags", str(root), "--dedupe", "--concept", "nope"]).exit_code == 2
