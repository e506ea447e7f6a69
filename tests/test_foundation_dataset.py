"""Dataset discovery: layouts, captions, and the layout findings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from curator.dataset.discover import discover, parse_concept_folder


def _img(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path


def _codes(ds) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(f.code for f in ds.findings)


def test_parse_concept_folder() -> None:
    assert parse_concept_folder("10_my_style") == (10, "my_style")
    assert parse_concept_folder("style") is None
    assert parse_concept_folder("x_10") is None


def test_kohya_layout_with_reg_and_captions(tmp_path: Path) -> None:
    _img(tmp_path / "train/10_cat/b.png")
    _img(tmp_path / "train/10_cat/a.jpg")
    (tmp_path / "train/10_cat/a.txt").write_text("cat")
    _img(tmp_path / "train/3_dog/c.webp")
    _img(tmp_path / "reg/1_animal/r.png")
    ds = discover(tmp_path / "train", reg_root=tmp_path / "reg")
    assert ds.layout == "kohya"
    assert [(c.name, c.repeats, c.is_reg) for c in ds.concepts] == [
        ("cat", 10, False),
        ("dog", 3, False),
        ("animal", 1, True),
    ]
    assert [i.rel for i in ds.items] == ["10_cat/a.jpg", "10_cat/b.png", "3_dog/c.webp", "reg/1_animal/r.png"]
    assert ds.items[0].caption_path == tmp_path / "train/10_cat/a.txt"
    assert ds.items[1].caption_path is None
    assert ds.reg_items[0].is_reg and ds.findings == []


def test_root_is_a_concept_folder(tmp_path: Path) -> None:
    _img(tmp_path / "20_person/a.png")
    ds = discover(tmp_path / "20_person")
    assert ds.layout == "concept_folder"
    assert [(c.name, c.repeats) for c in ds.concepts] == [("person", 20)]
    assert [i.rel for i in ds.items] == ["a.png"]


def test_plain_folder_explains_layout(tmp_path: Path) -> None:
    _img(tmp_path / "photos/a.png")
    ds = discover(tmp_path / "photos")
    assert ds.layout == "plain" and [(c.name, c.repeats) for c in ds.concepts] == [("photos", 1)]
    assert _codes(ds) == ["plain_folder"]
    assert "10_photos" in ds.findings[0].message


def test_layout_findings(tmp_path: Path) -> None:
    root = tmp_path / "train"
    _img(root / "10_cat/a.png")
    _img(root / "10_cat/sub/deep.png")
    _img(root / "10_cat/.hidden.png")
    _img(root / "dogs/d.png")
    _img(root / "loose.png")
    _img(root / ".dreamcurate/thumb.png")  # the workspace is never part of the dataset
    ds = discover(root)
    by_code = {f.code: f for f in ds.findings}
    assert _codes(ds) == ["folder_no_repeats", "hidden_file", "nested_images", "nested_images"]
    assert by_code["folder_no_repeats"].path == "dogs"
    assert by_code["hidden_file"].path == "10_cat/.hidden.png"
    assert {f.path for f in ds.findings if f.code == "nested_images"} == {"10_cat/sub", "."}
    assert [i.rel for i in ds.items] == ["10_cat/a.png"]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlink_loop_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "train"
    _img(root / "10_cat/a.png")
    os.symlink(root, root / "10_cat/loop")
    os.symlink(root / "10_cat/nowhere", root / "10_cat/broken")
    ds = discover(root)
    assert "symlink_loop" in _codes(ds)
    assert [i.rel for i in ds.items] == ["10_cat/a.png"]


def test_no_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ds = discover(tmp_path / "empty")
    assert _codes(ds) == ["no_images"] and ds.findings[0].severity.value == "error"


def test_caption_extension_mismatch_reported_not_guessed(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for name in ("a", "b"):
        _img(root / f"5_x/{name}.png")
        (root / f"5_x/{name}.caption").write_text("x, y")
    ds = discover(root)
    assert ds.caption_extension == ".txt"
    assert all(i.caption_path is None for i in ds.items)  # training reads .txt: there are none
    assert _codes(ds) == ["caption_extension_mismatch"]
    assert ds.findings[0].evidence["found"] == ".caption"
    forced = discover(root, caption_extension=".caption")
    assert forced.findings == [] and all(i.caption_path is not None for i in forced.items)


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "nope")


def test_extensions_kohya_does_not_list(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for name in ("a.png", "b.JPG", "c.gif", "d.tiff", "e.Png"):
        _img(root / "1_x" / name)
    ds = discover(root)
    assert len(ds.items) == 5  # dreamcurate reads them all
    flagged = sorted(f.path for f in ds.findings if f.code == "kohya_skips_extension")
    assert flagged == ["1_x/c.gif", "1_x/d.tiff", "1_x/e.Png"]


def test_reg_folder_inside_the_training_root(tmp_path: Path) -> None:
    root = tmp_path / "train"
    _img(root / "10_cat/a.png")
    _img(root / "reg/1_cat/r.png")
    ds = discover(root, reg_root=root / "reg")
    assert ds.findings == []
    assert [i.rel for i in ds.items] == ["10_cat/a.png", "reg/1_cat/r.png"]
