"""The preview's caption view agrees with the caption audit: same token count, same lost tags, keep_tokens marked."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from curator.captions.audit import AuditSettings, audit_captions, load_captions
from curator.captions.parse import read_caption
from curator.dataset.discover import discover
from curator.scan.results import ScanSettings
from tui.backend import Backend


def _dataset(tmp_path: Path, caption: str) -> Path:
    folder = tmp_path / "data" / "1_sks"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(folder / "a.png")
    (folder / "a.txt").write_text(caption)
    return tmp_path / "data"


def test_long_caption_marks_the_same_lost_tags_as_the_audit(tmp_path: Path) -> None:
    caption = "sks, " + ", ".join(f"tag{i}" for i in range(40)) + ", very last tag"
    root = _dataset(tmp_path, caption)
    backend = Backend(root, ScanSettings(workers=1, workspace=tmp_path / "ws"))
    view = backend.caption_view(caption, keep_tokens=2)
    audit = audit_captions(load_captions(discover(root).items), AuditSettings())
    finding = next(f for f in audit.findings if f.code == "caption_too_long")
    assert view.tokens == finding.evidence["tokens"] and view.limit == finding.evidence["limit"] == 75
    assert view.lost_from is not None and view.tags[view.lost_from :] == finding.evidence["cut_tags"]
    assert view.keep_tokens == 2 and view.tags[:2] == ["sks", "tag0"]
    assert read_caption(root / "1_sks" / "a.txt").text == caption  # viewing writes nothing


def test_short_caption_and_separator(tmp_path: Path) -> None:
    backend = Backend(_dataset(tmp_path, "sks"), ScanSettings(workers=1, workspace=tmp_path / "ws"))
    short = backend.caption_view("sks, smile, red hat", keep_tokens=1)
    assert short.lost_from is None and short.tags == ["sks", "smile", "red hat"] and short.keep_tokens == 1
    # with Kohya's ||| separator the fixed prefix is what stays in place, whatever keep_tokens says
    fixed = backend.caption_view("sks, red hat ||| smile, sky", keep_tokens=1)
    assert fixed.keep_tokens == 2 and fixed.tags[:2] == ["sks", "red hat"]
