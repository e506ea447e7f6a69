"""The trainer's commands against a user's own files: ``model convert`` / ``model tiny`` never replace anything but a
model (and only with --force), and training never replaces a user's folder that is named like its checkpoint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from curator.cli import cli

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_clear_line(result: Result, code: int, words: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert words in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1, result.stderr


def _users_folder(path: Path) -> Path:
    path.mkdir()
    (path / "holiday.png").write_bytes(b"precious")
    (path / "notes").mkdir()
    (path / "notes" / "todo.txt").write_text("mine\n")
    return path


@pytest.mark.parametrize(
    ("force", "words"),
    [(False, "already exists; use --force"), (True, "not a diffusers model folder (no model_index.json)")],
)
def test_convert_never_replaces_a_users_folder(tiny: Path, tmp_path: Path, force: bool, words: str) -> None:
    mine = _users_folder(tmp_path / "my stuff")
    before = _hashes(mine)
    result = _invoke(["model", "convert", tiny, mine, *(["--force"] if force else [])])
    _one_clear_line(result, 1, words)
    assert _hashes(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my stuff"]  # no temporaries left beside it


@pytest.mark.parametrize(
    ("name", "args", "words"),
    [
        ("notes.txt", ["--force"], "not a diffusers model folder"),  # a .txt OUT means a diffusers folder
        ("notes.txt", ["--force", "--to", "single-file"], "not a model file"),
        ("model.safetensors", [], "already exists; use --force"),
    ],
)
def test_convert_never_replaces_a_users_file(
    tiny: Path, tmp_path: Path, name: str, args: list[str], words: str
) -> None:
    mine = tmp_path / name
    mine.write_text("my own words\n")
    result = _invoke(["model", "convert", tiny, mine, *args])
    _one_clear_line(result, 1, words)
    assert mine.read_text() == "my own words\n"


def test_convert_force_replaces_a_model(tiny: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    old_file = tmp_path / "old.safetensors"
    old_file.write_bytes(b"a broken model the user wants replaced")
    done = _invoke(["model", "convert", tiny, old_file, "--force", "--precision", "float"])
    assert done.exit_code == 0, done.output
    with safe_open(str(old_file), framework="pt") as handle:
        assert handle.metadata()["dreamcurate.converted_from"] == "tiny.safetensors"
    folder = tmp_path / "diffusers"
    first = _invoke(["model", "convert", tiny, folder, "--to", "diffusers"])
    assert first.exit_code == 0 and (folder / "model_index.json").is_file(), first.output
    (folder / "stale.txt").write_text("from the old model folder\n")
    again = _invoke(["model", "convert", tiny, folder, "--to", "diffusers", "--force"])
    assert again.exit_code == 0, again.output
    assert (folder / "model_index.json").is_file() and not (folder / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffusers", "old.safetensors"]


def test_convert_into_a_folder_holding_the_source_is_a_usage_error(tmp_path: Path) -> None:
    from trainer.models.tiny import write_tiny_diffusers

    src = write_tiny_diffusers(tmp_path / "models" / "tiny")
    (tmp_path / "models" / "model_index.json").write_text("{}")  # looks like a model folder
    before = _hashes(tmp_path / "models")
    result = _invoke(["model", "convert", src, tmp_path / "models", "--force"])
    _one_clear_line(result, 2, "must not be or contain")
    assert _hashes(tmp_path / "models") == before


def test_tiny_never_replaces_a_users_folder(tmp_path: Path) -> None:
    mine = _users_folder(tmp_path / "mine")
    before = _hashes(mine)
    result = _invoke(["model", "tiny", mine, "--diffusers", "--force"])
    _one_clear_line(result, 1, "not a diffusers model folder")
    assert _hashes(mine) == before


def test_training_refuses_a_users_folder_named_like_its_checkpoint(tiny: Path, tmp_path: Path) -> None:
    concept = tmp_path / "train" / "1_sks"
    concept.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(concept / f"{i}.png")
        (concept / f"{i}.txt").write_text("sks\n")
    out = tmp_path / "out"
    out.mkdir()
    mine = _users_folder(out / "model")
    (out / ".model-settings").write_text("a hidden file of the user's\n")  # not a temporary of ours
    before = _hashes(out)
    config = tmp_path / "train.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "{tiny}"\ntrain_data_dir = "{tmp_path / "train"}"\n'
        f'output_dir = "{out}"\noutput_name = "model"\nsave_model_as = "diffusers"\n'
        'resolution = 64\nmin_bucket_reso = 64\nmax_train_steps = 1\nmixed_precision = "no"\n'
    )
    result = _invoke(["train", config, "--no-progress"])
    _one_clear_line(result, 1, "not a diffusers model folder")
    assert str(mine) in result.stderr
    assert {k: v for k, v in _hashes(out).items() if "events.jsonl" not in k} == before


def test_stale_temporaries_are_only_ours(tmp_path: Path) -> None:
    from trainer.checkpoint import remove_stale_temporaries

    (tmp_path / ".model.safetensors.abc123.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".model-000040.xyz.tmp").mkdir()
    (tmp_path / ".model-settings").write_text("the user's\n")
    (tmp_path / ".models").mkdir()
    removed = remove_stale_temporaries(tmp_path, "model")
    assert sorted(p.name for p in removed) == [".model-000040.xyz.tmp", ".model.safetensors.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model-settings", ".models"]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("zip-half", "its zip archive is incomplete"),
        ("legacy-half", "its data stops early"),
        ("empty", "the file is empty"),
        ("text", "not a PyTorch checkpoint at all"),
    ],
)
def test_damaged_ckpt_is_described_in_words(tmp_path: Path, kind: str, words: str) -> None:
    import re

    import torch

    whole = tmp_path / "whole.ckpt"
    torch.save({"a": torch.zeros(500)}, whole, _use_new_zipfile_serialization=kind != "legacy-half")
    data = whole.read_bytes()
    contents = {"empty": b"", "text": b"this is not a model\n"}.get(kind, data[: len(data) // 2])
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(contents)
    result = _invoke(["model", "info", fake])
    _one_clear_line(result, 1, words)
    assert "fake.ckpt: cannot read it" in result.stderr
    assert not re.search(r"\(\d+\)", result.stderr) and "miniz" not in result.stderr, result.stderr
    assert fake.read_bytes() == contents


class _OneProcess:
    """What save_state needs of an accelerate Accelerator, for one process."""

    is_main_process = True

    def wait_for_everyone(self) -> None:
        pass

    def save_state(self, folder: str) -> None:
        Path(folder).mkdir(parents=True)
        (Path(folder) / "model.bin").write_bytes(b"weights")


def test_saving_state_removes_only_our_old_states(tmp_path: Path) -> None:
    from curator.settings.config import ConfigError
    from trainer.checkpoint import Progress, latest_progress, save_state

    def progress(step: int) -> Progress:
        return Progress(step, 1, 0, 0, None, {})

    (tmp_path / "state").mkdir()
    mine = _users_folder(tmp_path / "state" / "step-mine")
    before = _hashes(mine)
    save_state(_OneProcess(), tmp_path, progress(1))
    save_state(_OneProcess(), tmp_path, progress(2))
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["latest", "step-00000002", "step-mine"]
    assert _hashes(mine) == before
    assert latest_progress(tmp_path).step == 2  # type: ignore[union-attr]
    squatter = _users_folder(tmp_path / "state" / "step-00000003")
    with pytest.raises(ConfigError, match="not a saved training state"):
        save_state(_OneProcess(), tmp_path, progress(3))
    assert (squatter / "holiday.png").read_bytes() == b"precious"
    assert latest_progress(tmp_path).step == 2  # type: ignore[union-attr]
    assert not list((tmp_path / "state").glob(".tmp-*"))
