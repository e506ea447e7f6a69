"""Adversarial tests of export (issue items 1, 2, 7, 17): the attack first, then proof nothing of the user's
changed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from tests._safety import assert_one_line_error, dataset, digest, invoke

REPO = str(Path(__file__).resolve().parents[1])


def _trained(out: Path) -> dict[str, str]:
    """What a training run leaves in OUT (train.toml's output_dir is OUT/model) plus a file of the user's."""
    (out / "model" / "state" / "step-00000024").mkdir(parents=True)
    (out / "model" / "final.safetensors").write_bytes(os.urandom(4096))
    (out / "model" / "state" / "step-00000024" / "progress.json").write_text("{}")
    (out / "model" / "samples").mkdir()
    (out / "model" / "samples" / "s0.png").write_bytes(b"png")
    (out / "my-notes.txt").write_text("mine")
    return digest(out / "model", out / "my-notes.txt")


def test_1_export_force_keeps_the_trained_model_and_users_files(tmp_path: Path) -> None:
    data, out = dataset(tmp_path / "data"), tmp_path / "out"
    assert invoke(["export", data, out, "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    model = _trained(out)
    (out / "img" / "3_cat" / "extra.txt").write_text("user's file inside the export")
    result = invoke(["export", data, out, "--force", "--resolution", "64", "--bucket-min", "64"])
    assert result.exit_code == 0, result.output
    assert digest(out / "model", out / "my-notes.txt") == model
    assert (out / "img" / "3_cat" / "extra.txt").read_text() == "user's file inside the export"
    assert "Kept in" in result.output and "model" in result.output
    assert (out / "manifest.json").is_file() and (out / "img" / "3_cat" / "0.png").is_file()


def test_1_force_refuses_when_a_users_file_sits_where_the_export_writes(tmp_path: Path) -> None:
    data, out = dataset(tmp_path / "data"), tmp_path / "out"
    assert invoke(["export", data, out, "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    (out / "img" / "3_cat" / "0.png").unlink()
    (out / "img" / "3_cat" / "0.png").write_bytes(b"the user's own picture")  # not the one export wrote
    marker = (out / ".dreamcurate-export.json").read_text()
    (out / ".dreamcurate-export.json").write_text(marker.replace('"img/3_cat/0.png",', ""))
    before = digest(out)
    result = invoke(["export", data, out, "--force", "--resolution", "64", "--bucket-min", "64"])
    assert_one_line_error(result, "img/3_cat/0.png")
    assert digest(out) == before


def test_2_a_dataset_named_like_a_stale_temporary_is_never_deleted(tmp_path: Path) -> None:
    data = dataset(tmp_path / ".photos.old-backup")
    lookalike = tmp_path / ".photos.tmp-mine"
    lookalike.mkdir()
    (lookalike / "keep.txt").write_text("user's")
    before = digest(data, lookalike)
    for _ in range(2):
        result = invoke(
            ["export", data, tmp_path / "photos", "--force", "--resolution", "64", "--bucket-min", "64"]
        )
        assert result.exit_code == 0, result.output
    assert {k: v for k, v in digest(data, lookalike).items() if ".dreamcurate/" not in k} == {
        k: v for k, v in before.items() if ".dreamcurate/" not in k
    }


def test_2_only_our_marked_temporaries_of_dead_processes_are_cleaned(tmp_path: Path) -> None:
    from curator.export import replace

    out = tmp_path / "out"
    ours = replace.new_tree(out)  # as a killed export leaves it: our marker, a process that is gone
    marker = (ours / replace.MARKER).read_text()
    (ours / replace.MARKER).write_text(marker.replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    busy = replace.new_tree(out)  # a live export of the same OUT (this process stands in for it)
    plain = tmp_path / ".out.tmp-plain"
    plain.mkdir()
    assert replace.remove_stale(out, protected=[busy]) == [ours]
    assert busy.is_dir() and plain.is_dir()


_KILL = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    from click.testing import CliRunner
    import curator.export.replace as rp
    from curator.cli import cli
    where = {where!r}
    if where == "between-renames":
        rp._exchange = lambda a, b: False
        real = os.rename
        def rename(a, b):
            real(a, b)
            if Path(a).name == "out":
                os.kill(os.getpid(), signal.SIGKILL)
        rp.os.rename = rename
    else:  # after the exchange, before the user's entries moved over
        rp._move_kept = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    CliRunner().invoke(cli, ["export", {data!r}, {out!r}, "--force", "--resolution", "64", "--bucket-min", "64"])
    """
)


def _kill_during_swap(tmp_path: Path, where: str) -> tuple[Path, Path, dict[str, str]]:
    data, out = dataset(tmp_path / "data"), tmp_path / "out"
    assert invoke(["export", data, out, "--resolution", "64", "--bucket-min", "64"]).exit_code == 0
    model = _trained(out)
    script = _KILL.format(repo=REPO, where=where, data=str(data), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert proc.returncode == -9
    return data, out, model


def test_7_kill_between_the_renames_loses_nothing(tmp_path: Path) -> None:
    data, out, model = _kill_during_swap(tmp_path, "between-renames")
    assert not out.exists()  # the attack: the old OUT is set aside, the new one not yet in place
    result = invoke(["export", data, out, "--force", "--resolution", "64", "--bucket-min", "64"])
    assert result.exit_code == 0, result.output
    assert digest(out / "model", out / "my-notes.txt") == model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]


def test_7_kill_after_the_exchange_finishes_on_the_next_run(tmp_path: Path) -> None:
    data, out, model = _kill_during_swap(tmp_path, "after-exchange")
    assert not (out / "model").exists()  # the attack: the model is still in the set-aside tree
    result = invoke(["export", data, out, "--force", "--resolution", "64", "--bucket-min", "64"])
    assert result.exit_code == 0, result.output
    assert digest(out / "model", out / "my-notes.txt") == model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]


def test_17_export_folder_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        result = invoke(
            [
                "export",
                dataset(tmp_path / "data"),
                tmp_path / "out",
                "--resolution",
                "64",
                "--bucket-min",
                "64",
            ]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "img" / "3_cat").stat().st_mode) == 0o755
