"""Adversarial tests of caption edits and their journal (issue items 5, 8, 9, 11, 15, 17 and a kill during
``--undo``): the hostile file or command first, then proof that nothing outside the target changed."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curator.dataset.workspace import Workspace
from tests._safety import assert_one_line_error, dataset, digest, home, invoke

REPO = str(Path(__file__).resolve().parents[1])


def _captions(root: Path) -> dict[str, str]:
    return {k: v for k, v in digest(root).items() if k.endswith(".txt") and "/.dreamcurate/" not in k}


def test_8_undo_in_a_copy_never_touches_the_original(tmp_path: Path) -> None:
    original = dataset(tmp_path / "original")
    assert invoke(["tags", original, "--add-trigger", "sks", "--apply"]).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = digest(original)
    result = invoke(["tags", copy, "--undo"])
    assert result.exit_code == 0, result.output
    assert digest(original) == before
    assert (copy / "3_cat" / "0.txt").read_text() == "cat, pose0, red"  # the copy got its own captions back


def _plant(root: Path, entries: list[dict[str, str]]) -> None:
    folder = root / ".dreamcurate" / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    journal = {"schema": "dreamcurate.tagjournal/1", "created": 0, "state": "applied", "entries": entries}
    (folder / "20990101-000000-000000.json").write_text(json.dumps(journal))


def _entry(caption: str, old: bytes = b"attacker's text\n", current: bytes = b"") -> dict[str, str]:
    return {
        "caption": caption,
        "rel": "3_cat/0.png",
        "old": base64.b64encode(old).decode(),
        "old_sha256": hashlib.sha256(old).hexdigest(),
        "new_sha256": hashlib.sha256(current).hexdigest(),
    }


@pytest.mark.parametrize(
    "caption",
    [
        "../home/notes.txt",
        "{home}/notes.txt",
        "linked/notes.txt",
        "3_cat/0.png",
        "3_cat/../../home/notes.txt",
        "",
    ],
)
def test_9_a_planted_journal_never_writes_outside_the_dataset(tmp_path: Path, caption: str) -> None:
    data, user = dataset(tmp_path / "data"), home(tmp_path / "home")
    (data / "linked").symlink_to(user)  # a folder link inside the dataset that leads out of it
    _plant(data, [_entry("3_cat/1.txt", current=b"cat, pose1, red"), _entry(caption.format(home=user))])
    before = digest(data / "3_cat", user)
    result = invoke(["tags", data, "--undo", "--force"])
    assert_one_line_error(result, "nothing was restored")
    assert digest(data / "3_cat", user) == before  # the valid first entry was not written either


def test_9_a_journal_of_an_older_version_with_absolute_paths_is_refused(tmp_path: Path) -> None:
    data, user = dataset(tmp_path / "data"), home(tmp_path / "home")
    entry = _entry("x") | {"path": str(user / "notes.txt")}
    del entry["caption"]
    _plant(data, [entry])
    before = digest(data / "3_cat", user)
    assert_one_line_error(invoke(["tags", data, "--undo"]), "journal")
    assert digest(data / "3_cat", user) == before


def test_5_a_second_writer_waits_then_names_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import curator.dataset.workspace as workspace_mod

    monkeypatch.setattr(workspace_mod, "LOCK_WAIT_S", 0.3)
    data = dataset(tmp_path / "data")
    before = digest(data / "3_cat")
    with Workspace.for_dataset(data).locked():  # another tags --apply (or the TUI) is writing
        result = invoke(["tags", data, "--add-trigger", "sks", "--apply"])
        undo = invoke(["tags", data, "--undo"])
    assert_one_line_error(result, f"process {os.getpid()}", "no caption was changed")
    assert digest(data / "3_cat") == before
    assert undo.exit_code != 0 and "Traceback" not in undo.output
    assert invoke(["tags", data, "--add-trigger", "sks", "--apply"]).exit_code == 0  # free again


def test_5_two_applies_from_one_dry_run_lose_no_edit(tmp_path: Path) -> None:
    from curator.captions.edit import EditConflict, TagEdits, apply_changes, plan_changes
    from curator.dataset.discover import discover

    data = dataset(tmp_path / "data")
    ws = Workspace.for_dataset(data)
    first, _ = plan_changes(discover(data).items, TagEdits(add_trigger="sks"))
    second, _ = plan_changes(discover(data).items, TagEdits(remove=("red",)))
    apply_changes(first, ws)
    with pytest.raises(EditConflict, match="changed since it was read"):
        apply_changes(second, ws)  # read before the first wrote: it must not overwrite the first's edit
    assert (data / "3_cat" / "0.txt").read_text() == "sks, cat, pose0, red"


def test_11_a_caption_linked_out_of_the_dataset_is_never_read_copied_or_replaced(tmp_path: Path) -> None:
    data, user = dataset(tmp_path / "data"), home(tmp_path / "home")
    caption = data / "3_cat" / "0.txt"
    caption.unlink()
    caption.symlink_to(user / ".ssh" / "id_ed25519")
    before = digest(data, user)
    scan = invoke(["scan", data, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html"])
    assert scan.exit_code == 0, scan.output
    assert "PRIVATE KEY" not in (tmp_path / "r.html").read_text() + (tmp_path / "r.json").read_text()
    assert "caption_symlink_outside" in (tmp_path / "r.json").read_text()
    assert invoke(["tags", data, "--add-trigger", "sks", "--apply"]).exit_code == 0
    assert caption.is_symlink() and (user / ".ssh" / "id_ed25519").read_text() == "PRIVATE KEY\n"
    assert (
        invoke(["export", data, tmp_path / "out", "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    )
    assert "PRIVATE KEY" not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*.txt")
    )
    assert {k: v for k, v in digest(user).items()} == {k: v for k, v in before.items() if str(user) in k}


def test_11_a_relative_symlinked_image_exports_as_the_image(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    (data / "3_cat" / "0.png").rename(data / "0.png")
    (data / "3_cat" / "0.png").symlink_to("../0.png")
    assert (
        invoke(["export", data, tmp_path / "out", "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    )
    exported = tmp_path / "out" / "img" / "3_cat" / "0.png"
    assert not exported.is_symlink() and exported.read_bytes() == (data / "0.png").read_bytes()


def test_15_a_255_byte_caption_name_is_applied_whole(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    long_stem = "x" * (255 - len(".png"))
    (data / "3_cat" / "0.png").rename(data / "3_cat" / f"{long_stem}.png")
    (data / "3_cat" / "0.txt").unlink()
    (data / "3_cat" / f"{long_stem}.txt").write_text("cat, long")
    result = invoke(["tags", data, "--add-trigger", "sks", "--apply"])
    assert result.exit_code == 0, result.output
    assert all(p.read_text().startswith("sks, ") for p in (data / "3_cat").glob("*.txt"))


def test_17_temporaries_of_a_killed_edit_are_cleaned_and_advice_is_right(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    stale = data / "3_cat" / ".0.txt.abcd1234.tmp"  # what a kill during an atomic write leaves
    stale.write_text("half")
    users = data / "3_cat" / ".0.txt.mine.tmp"
    users.write_text("the user's")
    assert invoke(["tags", data, "--add-trigger", "sks", "--apply"]).exit_code == 0
    assert not stale.exists() and users.exists()
    (data / ".dreamcurate" / "journal").chmod(0o500)  # the journal cannot be written: nothing changes
    try:
        result = invoke(["tags", data, "--remove", "red", "--apply"])
    finally:
        (data / ".dreamcurate" / "journal").chmod(0o700)
    if result.exit_code != 0:  # (root writes anyway)
        assert_one_line_error(result, "no caption was changed")
        assert "--undo" not in result.output


_KILL_UNDO = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{repo!r}]
    import curator.captions.edit as edit
    from click.testing import CliRunner
    from curator.cli import cli
    real, count = edit.fsutil.atomic_write_bytes, [0]
    def write(path, data):
        real(path, data)
        count[0] += 1
        if count[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    edit.fsutil.atomic_write_bytes = write
    CliRunner().invoke(cli, ["tags", {data!r}, "--undo"])
    """
)


def test_kill_9_during_undo_then_undo_again_restores_everything(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", count=4)
    before = _captions(data)
    assert invoke(["tags", data, "--add-trigger", "sks", "--apply"]).exit_code == 0
    after = _captions(data)
    proc = subprocess.run([sys.executable, "-c", _KILL_UNDO.format(repo=REPO, data=str(data))], timeout=120)
    assert proc.returncode == -9
    now = _captions(data)
    assert all(now[k] in (before[k], after[k]) for k in before)  # every caption whole: old or new
    assert sum(now[k] == before[k] for k in before) == 2
    result = invoke(["tags", data, "--undo"])
    assert result.exit_code == 0, result.output
    assert _captions(data) == before
    assert not [p for p in (data / "3_cat").iterdir() if p.name.startswith(".")]


def test_17_a_failure_before_any_caption_changed_does_not_send_the_user_to_undo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curator.captions.edit as edit

    data = dataset(tmp_path / "data")
    before = _captions(data)
    real = edit.fsutil.atomic_write_bytes

    def full_disk(path: Path, payload: bytes) -> None:
        if path.suffix == ".txt":
            raise OSError(28, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(edit.fsutil, "atomic_write_bytes", full_disk)
    result = invoke(["tags", data, "--add-trigger", "sks", "--apply"])
    assert_one_line_error(result, "no caption was changed")
    assert "--undo" not in result.output and _captions(data) == before
    assert not list((data / ".dreamcurate" / "journal").glob("*.json"))


def test_11_an_image_linked_out_of_the_dataset_is_a_finding_never_read(tmp_path: Path) -> None:
    """The attack: a dataset (an archive from someone else) holds an image that is a link to a file of the user's.
    It must not be decoded, shown, trained or exported: a finding says so."""
    from tests._report_fixtures import make_image

    data, user = dataset(tmp_path / "data"), home(tmp_path / "home")
    make_image(user / "private.png", 7, (64, 64))
    (data / "3_cat" / "9.png").symlink_to(user / "private.png")
    before = digest(user)
    scan = invoke(["scan", data, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html"])
    assert scan.exit_code == 0, scan.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert "3_cat/9.png" not in {item["path"] for item in report["items"]}
    assert any(f["code"] == "image_symlink_outside" for f in report["findings"])
    out = tmp_path / "out"
    assert invoke(["export", data, out, "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    assert not (out / "img" / "3_cat" / "9.png").exists()
    assert "9.png" not in (out / "plan.json").read_text()
    assert digest(user) == before
