"""Adversarial values (issue items 14, 15, 16): hostile files and option values end in one line naming the
setting, never a traceback, and cost bounded time and memory."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from curator.settings.config import write_config
from tests._report_fixtures import make_image
from tests._safety import assert_one_line_error, dataset, digest, invoke
from tests.trainer_testkit import SQUARE, fast_config, make_images


def _safetensors(path: Path, header: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.mark.parametrize(
    "header",
    ids=["nested", "metadata-not-text", "shape-not-a-list"],
    argvalues=[
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(
            {"__metadata__": {"steps": 5}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
        ).encode(),
        json.dumps({"w": {"dtype": "F32", "shape": "x", "data_offsets": [0, 4]}}).encode(),
    ],
)
def test_14_model_info_on_a_hostile_safetensors_header(tmp_path: Path, header: bytes) -> None:
    path = _safetensors(tmp_path / "m.safetensors", header + b"\0" * 4)
    assert_one_line_error(invoke(["model", "info", path]), "m.safetensors")


@pytest.mark.parametrize("option", ["--te-sensitivity", "--its"])
def test_14_plan_refuses_nan(tmp_path: Path, option: str) -> None:
    assert_one_line_error(invoke(["plan", dataset(tmp_path / "data"), option, "nan"]), option, code=2)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--seed", "99999999999"),
        ("--clip-skip", "1000"),
        ("--reg-data-dir", "{data}"),
        ("--resolution", "8"),
        ("--output-name", "a\x1b]2;pwned\x07"),
        ("--sample-steps", "100000000"),
        ("--learning-rate", "nan"),
    ],
)
def test_14_train_refuses_bad_values_naming_the_setting(tmp_path: Path, option: str, value: str) -> None:
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"never read")
    make_images(tmp_path / "data" / "1_sks", [SQUARE])
    config = tmp_path / "train.toml"
    write_config(fast_config(base, tmp_path / "data", tmp_path / "out"), config)
    result = invoke(["train", config, option, value.format(data=tmp_path / "data")])
    assert_one_line_error(result, option, code=2)
    assert "\x1b" not in result.output and not (tmp_path / "out").exists()


def test_15_one_255_byte_name_becomes_a_finding(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    long = data / "3_cat" / ("y" * 251 + ".png")  # 255 bytes: its ".caption" could not exist
    make_image(long, 7, (64, 64))
    before = digest(data)
    for args in (
        ["scan", data, "--caption-extension", ".caption", "--json", tmp_path / "r.json"],
        ["tags", data, "--caption-extension", ".caption", "--add-trigger", "sks"],
        ["plan", data, "--caption-extension", ".caption"],
        ["export", data, tmp_path / "out", "--resolution", "64", "--bucket-min", "64"],
    ):
        result = invoke(args)
        assert result.exit_code == 0 and "Traceback" not in result.output, (args, result.output)
    assert "name_too_long" in (tmp_path / "r.json").read_text()
    assert (tmp_path / "out" / "img" / "3_cat" / long.name).is_file()
    assert {k: v for k, v in digest(data).items() if "/.dreamcurate/" not in k} == {
        k: v for k, v in before.items() if "/.dreamcurate/" not in k
    }


def test_16_a_zip_bomb_checkpoint_is_refused_from_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    bomb = tmp_path / "bomb.ckpt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(100 << 20))  # 100 MB of zeros, about 100 KB packed
    assert bomb.stat().st_size < 1 << 20

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load reached: the archive was about to be unpacked")

    monkeypatch.setattr(torch, "load", never)
    assert_one_line_error(invoke(["model", "info", bomb]), "zip bomb")


def test_16_a_huge_caption_costs_no_more_than_a_small_one(tmp_path: Path) -> None:
    from curator.captions.parse import MAX_CAPTION_BYTES, read_caption

    data = dataset(tmp_path / "data")
    huge = data / "3_cat" / "0.txt"
    huge.write_bytes(b"cat, huge, " + b"x" * (20 << 20) + b"\nsecond")
    caption = read_caption(huge)
    assert caption.too_large and caption.text.startswith("cat, huge") and caption.raw is None
    assert len(caption.text) <= MAX_CAPTION_BYTES
    result = invoke(["scan", data, "--json", tmp_path / "r.json"])
    assert result.exit_code == 0 and "caption_too_large" in (tmp_path / "r.json").read_text()
    before = huge.stat().st_mtime_ns
    assert invoke(["tags", data, "--add-trigger", "sks", "--apply"]).exit_code == 0
    assert huge.stat().st_mtime_ns == before  # never rewritten from a part of it


def test_16_a_resolution_the_plan_says_cannot_fit_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.memory
    from trainer.models.tiny import write_tiny_model

    base = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE])
    config = tmp_path / "train.toml"
    write_config(fast_config(base, tmp_path / "data", tmp_path / "out", max_bucket_reso=1024), config)
    monkeypatch.setattr(trainer.memory, "available_gb", lambda device: 1.0)  # a 1 GB device
    result = invoke(["train", config, "--resolution", "1024"])
    assert_one_line_error(result, "resolution 1024", "GB")
    assert not list((tmp_path / "out").glob("*.safetensors"))  # (runs that fit: every other trainer test)
