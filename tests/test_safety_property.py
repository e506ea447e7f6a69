"""Property test: random hostile file names and captions (control characters, terminal escapes, markup, bidi
overrides, bytes that are not UTF-8, names at the 255-byte limit) through scan, tags, plan, export and the TUI
backend. Every command ends without a traceback, no raw control character reaches its output, and the HTML report
is well-formed with the hostile text escaped."""

from __future__ import annotations

import os
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from curator.textsafe import has_unsafe
from tests._report_fixtures import make_image
from tests._safety import invoke

PIECES = [
    "\x1b]2;pwned\x07",
    "\x1b[2J",
    "\x1b[31m",
    "\r",
    "\x9b",
    "\u202e",
    "[bold]",
    "[/]",
    "[red",
    "[link=file:///etc]x[/link]",
    "<script>",
    "&amp;",
    "%s{0}",
    "\t",
    "cat",
    "photo",
    " ",
]
BAD_BYTES = [b"\xff", b"\xc3(", b"\xed\xa0\x80"]


def _name(rng: random.Random, limit: int) -> bytes:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))).replace("/", "_")
    raw = text.encode("utf-8") + (rng.choice(BAD_BYTES) if rng.random() < 0.4 else b"")
    if rng.random() < 0.2:
        raw += b"x" * (limit - len(raw))  # a name at the file system's limit
    return raw[:limit] or b"n"


def _dataset(root: Path, rng: random.Random) -> Path:
    concept = root / os.fsdecode(b"3_" + _name(rng, 60))
    concept.mkdir(parents=True)
    for _ in range(3):
        stem = _name(rng, 255 - len(".caption"))
        image = Path(os.fsdecode(os.fsencode(concept) + b"/" + stem + b".png"))
        make_image(image, rng.randint(0, 10_000), (64, 64))
        caption = b", ".join(_name(rng, 40) for _ in range(rng.randint(1, 5)))
        image.with_suffix(".txt").write_bytes(caption + (b"\nsecond line" if rng.random() < 0.3 else b""))
    return root


class _Balance(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "input", "link", "col", "area", "base", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"  # self-closed (<rect/>): nothing to balance

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def _clean(result, what: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    assert "Traceback" not in result.output, (what, result.output)
    assert not has_unsafe(result.output), (what, repr(result.output))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_hostile_names_and_captions_through_every_command(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = _dataset(tmp_path / "da[ta]", rng)
    html, out = tmp_path / "r.html", tmp_path / "out"
    runs = {
        "scan": [
            "scan",
            data,
            "--json",
            tmp_path / "r.json",
            "--html",
            html,
            "--no-progress",
            "--workers",
            "1",
        ],
        "tags": ["tags", data],
        "dry": ["tags", data, "--add-trigger", "sks", "--dedupe"],
        "apply": ["tags", data, "--add-trigger", "sks", "--apply"],
        "undo": ["tags", data, "--undo"],
        "plan": ["plan", data, "--resolution", "64", "--bucket-min", "64", "--bucket-max", "128"],
        "export": ["export", data, out, "--resolution", "64", "--bucket-min", "64"],
    }
    for what, args in runs.items():
        _clean(invoke(args), what)
    text = html.read_text(encoding="utf-8")
    assert not has_unsafe(text.replace("\r", ""))
    checker = _Balance()
    checker.feed(text)
    assert checker.stack == [] and checker.scripts == 0


@pytest.mark.parametrize("seed", range(3))
def test_hostile_names_through_the_tui_backend(tmp_path: Path, seed: int) -> None:
    from curator.scan.results import ScanSettings
    from tui.backend import Backend
    from tui.state import TagEditForm

    data = _dataset(tmp_path / "data", random.Random(100 + seed))
    backend = Backend(data, ScanSettings(workers=1, progress=False))
    result = backend.scan(lambda done, total: None, lambda: False)
    backend.tag_counts(result)
    for item in result.dataset.items:
        text = backend.read_caption(item.caption_path)
        backend.caption_view(text, keep_tokens=1)
    edit = TagEditForm("trigger", "sks")
    backend.tag_preview(result, edit)
    for message in (backend.tag_apply(result, edit), backend.tag_undo()):
        assert not has_unsafe(message)
