"""Caption reading and parsing as Kohya does it: first line, tags, |||, weights, escapes, shuffle + keep_tokens."""

from __future__ import annotations

import random
from pathlib import Path

from curator.captions.parse import (
    CaptionOptions,
    normalize_tag,
    parse_caption,
    process_caption,
    read_caption,
    shuffle_caption,
)


def test_read_first_line_only(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"  sks, 1girl  \r\nsecond line\n\nthird\n")
    f = read_caption(p)
    assert (f.status, f.text, f.extra_lines) == ("ok", "sks, 1girl", 2)


def test_read_missing_empty_and_not_utf8(tmp_path: Path) -> None:
    assert read_caption(None).status == "missing"
    assert read_caption(tmp_path / "nope.txt").status == "missing"
    (tmp_path / "zero.txt").write_bytes(b"")
    zero = read_caption(tmp_path / "zero.txt")
    assert zero.status == "empty" and zero.zero_bytes
    (tmp_path / "blank.txt").write_bytes(b"   \nsks\n")
    blank = read_caption(tmp_path / "blank.txt")
    assert blank.status == "empty" and not blank.zero_bytes and blank.extra_lines == 1
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    bad = read_caption(tmp_path / "latin.txt")
    assert bad.status == "not_utf8" and "byte 3" in (bad.error or "")


def test_parse_tags_and_separator() -> None:
    c = parse_caption("sks, 1girl,, blue eyes ,  ")
    assert c.tags == ("sks", "1girl", "blue eyes") and not c.has_separator
    c = parse_caption("sks, woman ||| smile, outdoors ||| best quality")
    assert c.fixed == ("sks", "woman") and c.flex == ("smile", "outdoors") and c.suffix == ("best quality",)
    assert c.has_separator
    assert parse_caption("a, b\nc, d").tags == ("a", "b")


def test_normalize_weights_escapes_underscores() -> None:
    assert normalize_tag("(blue_eyes:1.2)") == "blue eyes"
    assert normalize_tag("((Smile))") == "smile"
    assert normalize_tag("[background]") == "background"
    assert normalize_tag("(tag: .5)") == "tag"
    assert normalize_tag("ganyu_\\(genshin_impact\\)") == "ganyu (genshin impact)"
    assert normalize_tag("\\(artist\\)") == "(artist)"  # escaped brackets are the tag's own, never stripped
    assert normalize_tag("  Looking   AT_viewer ") == "looking at viewer"
    assert normalize_tag("time 12:30") == "time 12:30"  # a colon without brackets is not a weight


def test_shuffle_keeps_first_n_tags() -> None:
    rng = random.Random(3)
    seen = set()
    for _ in range(50):
        out = shuffle_caption("sks, woman, a, b, c, d", keep_tokens=2, rng=rng)
        tags = out.split(", ")
        assert tags[:2] == ["sks", "woman"] and sorted(tags[2:]) == ["a", "b", "c", "d"]
        seen.add(out)
    assert len(seen) > 5  # it does shuffle


def test_shuffle_with_separator_ignores_keep_tokens() -> None:
    rng = random.Random(1)
    for _ in range(20):
        tags = shuffle_caption("sks ||| a, b, c ||| end", keep_tokens=3, rng=rng).split(", ")
        assert tags[0] == "sks" and tags[-1] == "end" and sorted(tags[1:-1]) == ["a", "b", "c"]


def test_process_caption_without_shuffle_keeps_text() -> None:
    opts = CaptionOptions(shuffle_caption=False)
    assert (
        process_caption("sks ||| a,b\nsecond", opts) == "sks ||| a,b"
    )  # Kohya leaves ||| in: the model reads it
    opts = CaptionOptions(shuffle_caption=True, keep_tokens=1, caption_prefix="photo of")
    out = process_caption("sks, a, b", opts, random.Random(0))
    assert out.startswith("photo of sks, ")
    dropped = CaptionOptions(shuffle_caption=False, caption_tag_dropout_rate=1.0, keep_tokens=1)
    assert process_caption("sks, a, b", dropped) == "sks"
