"""``dreamcurate export`` and ``dreamcurate run`` through the real CLI (real scan of generated images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from curator.cli import cli
from tests._report_fixtures import make_image, tree_digest


def _dataset(root: Path, count: int = 4, size: tuple[int, int] = (96, 96)) -> Path:
    folder = root / "3_cat"
    for n in range(count):
        make_image(folder / f"{n}.png", 100 + n, size)
        (folder / f"{n}.txt").write_text(f"cat, pose{n}", encoding="utf-8")
    return root


#: 64 px training: the buckets must reach down to it (min_bucket_reso <= resolution)
SMALL = ["--resolution", "64", "--bucket-min", "64", "--min-bucket-reso", "64"]


def _invoke(args: list[str], stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, args, input=stdin, catch_exceptions=False)


def test_export_command_writes_the_folder_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    before = tree_digest(data)
    out = tmp_path / "out"
    result = _invoke(["export", str(data), str(out), *SMALL])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["items"] == 4
    assert (out / "dataset.toml").exists() and (out / "train.toml").exists()
    assert tomllib.loads((out / "train.toml").read_text())["max_train_epochs"] == 200
    again = _invoke(["export", str(data), str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    assert _invoke(["export", str(data), str(out), "--force", *SMALL]).exit_code == 0
    assert {k: v for k, v in tree_digest(data).items() if ".dreamcurate" not in k} == {
        k: v for k, v in before.items() if ".dreamcurate" not in k
    }


def test_export_command_honours_review_drops(tmp_path: Path) -> None:
    from curator.dataset.workspace import Workspace
    from curator.review.decisions import DecisionStore

    data = _dataset(tmp_path / "data")
    DecisionStore(Workspace.for_dataset(data)).set("3_cat/1.png", "drop", "not my cat")
    assert _invoke(["export", str(data), str(tmp_path / "out"), *SMALL]).exit_code == 0
    assert not (tmp_path / "out/img/3_cat/1.png").exists() and (tmp_path / "out/img/3_cat/0.png").exists()


def test_run_without_a_terminal_asks_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.models.info

    monkeypatch.setattr(
        trainer.models.info, "inspect_model", lambda path: {}
    )  # any base passes the header check
    data = _dataset(tmp_path / "data")
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"not used: run stops before training")
    out = tmp_path / "out"
    args = [
        "run",
        str(data),
        "--base",
        str(base),
        "--out",
        str(out),
        "--resolution",
        "64",
        "--min-bucket-reso",
        "64",
    ]
    result = _invoke(args)
    assert result.exit_code == 1 and "--yes" in result.output
    assert not out.exists()
    assert (data / ".dreamcurate" / "report.html").exists()  # the report to decide from is there


def test_run_refuses_a_bad_base_or_existing_out_before_any_work(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    base = tmp_path / "lora.safetensors"
    base.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    result = _invoke(["run", str(data), "--base", str(base), "--out", str(tmp_path / "out"), "--yes"])
    assert result.exit_code == 1 and "base model" in result.output
    assert not (data / ".dreamcurate").exists()  # refused before the scan
    (tmp_path / "out").mkdir()
    again = _invoke(["run", str(data), "--base", str(base), "--out", str(tmp_path / "out"), "--yes"])
    assert again.exit_code == 1 and "--force" in again.output


@pytest.mark.slow
def test_run_goes_from_a_raw_folder_to_a_checkpoint(tmp_path: Path) -> None:
    tiny = pytest.importorskip("trainer.models.tiny")
    pytest.importorskip("trainer.loop")
    data = _dataset(tmp_path / "data", count=3, size=(64, 64))
    base = tiny.write_tiny_model(tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    args = ["run", str(data), "--base", str(base), "--out", str(out), "--yes", "--max-train-steps", "1"]
    args += [
        "--resolution",
        "64",
        "--min-bucket-reso",
        "64",
        "--max-bucket-reso",
        "128",
        "--mixed-precision",
        "no",
    ]
    args += ["--no-progress"]

    def user_files() -> dict[str, str]:  # the workspace (.dreamcurate) is ours; everything else is the user's
        return {k: v for k, v in tree_digest(data).items() if not k.startswith(".dreamcurate")}

    before = user_files()
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    assert user_files() == before  # images and captions byte-identical after scan, export and training
    assert (out / "report.html").exists() and (out / "manifest.json").exists()
    assert list((out / "model").glob("*.safetensors"))
    config = tomllib.loads((out / "train.toml").read_text())
    assert config["max_train_steps"] == 1 and config["train_data_dir"] == str(out.absolute() / "img")
