"""Export places images by hard link where it can and by copy otherwise; the source is never moved or changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curator.export import folder as export_module
from curator.export.folder import ExportOptions, export_dataset
from curator.review.curation import build_curation
from tests._report_fixtures import build_result, tree_digest


def _result(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_curation(build_result(tmp_path / "data", {"cat": (3, ["a.png", "b.png"])}, {}))


def test_images_are_hard_linked_and_counted(tmp_path: Path) -> None:
    result = _result(tmp_path)
    before = tree_digest(tmp_path / "data")
    report = export_dataset(result, tmp_path / "out", ExportOptions())
    exported = tmp_path / "out" / "img" / "3_cat" / "a.png"
    assert os.path.samefile(exported, tmp_path / "data" / "3_cat" / "a.png")
    assert (report.linked, report.copied) == (2, 0)
    # captions are always copies: editing the export's captions can never reach the user's files
    caption = tmp_path / "out" / "img" / "3_cat" / "a.txt"
    assert not os.path.samefile(caption, tmp_path / "data" / "3_cat" / "a.txt")
    assert tree_digest(tmp_path / "data") == before


def test_copies_when_links_fail_or_are_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _result(tmp_path)
    before = tree_digest(tmp_path / "data")
    report = export_dataset(result, tmp_path / "off", ExportOptions(hardlink=False))
    assert (report.linked, report.copied) == (0, 2)

    def cross_device(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(export_module.os, "link", cross_device)
    report = export_dataset(result, tmp_path / "xdev", ExportOptions())
    assert (report.linked, report.copied) == (0, 2)
    for out in ("off", "xdev"):
        exported = tmp_path / out / "img" / "3_cat" / "b.png"
        assert not os.path.samefile(exported, tmp_path / "data" / "3_cat" / "b.png")
        assert exported.read_bytes() == (tmp_path / "data" / "3_cat" / "b.png").read_bytes()
    assert tree_digest(tmp_path / "data") == before
