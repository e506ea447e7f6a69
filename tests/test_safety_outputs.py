"""Adversarial tests of what the commands write besides exports (issue items 3, 4): the attack first, then proof
that the dataset is unchanged and the answer is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._safety import assert_one_line_error, dataset, digest, invoke


@pytest.mark.parametrize("ext", [".bmp", ".png", "PNG", ".json", ".safetensors"])
def test_3_an_image_extension_as_caption_extension_is_a_usage_error(tmp_path: Path, ext: str) -> None:
    data = dataset(tmp_path / "data")
    (data / "3_cat" / "0.bmp").write_bytes(b"BM" + bytes(64))  # a BMP image beside a PNG of the same stem
    before = digest(data)
    result = invoke(["tags", data, "--caption-extension", ext, "--add-trigger", "sks", "--apply"])
    assert_one_line_error(result, "caption extension", code=2)
    assert digest(data) == before


def test_3_the_train_config_refuses_it_too(tmp_path: Path) -> None:
    from curator.settings.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="caption_extension"):
        TrainConfig(caption_extension=".bmp").validate(check_paths=False)


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "{data}", "--html", "{data}/3_cat/0.png"],
        ["scan", "{data}", "--json", "{data}/3_cat/0.txt"],
        ["tags", "{data}", "--json", "{data}/3_cat/1.txt"],
        ["plan", "{data}", "--json", "{data}/3_cat/2.png"],
        ["scan", "{data}", "--json", "{home}/notes.txt"],
        ["plan", "{data}", "--json", "{home}/notes.txt"],
    ],
)
def test_4_reports_never_overwrite_the_dataset_or_a_users_file(tmp_path: Path, args: list[str]) -> None:
    data, home = dataset(tmp_path / "data"), tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("my notes")
    before = digest(data, home)
    result = invoke([a.format(data=data, home=home) for a in args])
    assert_one_line_error(result, "refusing", code=2)
    assert digest(data, home) == before


def test_4_own_reports_are_replaced_and_force_overwrites(tmp_path: Path) -> None:
    data, home = dataset(tmp_path / "data"), tmp_path / "home"
    home.mkdir()
    for args in (
        ["scan", data, "--json", home / "r.json", "--html", home / "r.html"],
        ["plan", data, "--json", home / "p.json"],
    ):
        assert invoke(args).exit_code == 0
        assert invoke(args).exit_code == 0  # the second run replaces its own report
    assert json.loads((home / "r.json").read_text())["schema"].startswith("dreamcurate.")
    (home / "notes.txt").write_text("mine")
    assert invoke(["tags", data, "--json", home / "notes.txt", "--force"]).exit_code == 0
    # the workspace inside the dataset is a fine place for a report
    assert invoke(["scan", data, "--json", data / ".dreamcurate" / "scan.json"]).exit_code == 0
