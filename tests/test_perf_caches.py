"""The warm-path caches give the same answers as the plain computations they replace."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from curator import tokenizer as tk
from curator.captions import normalize_tag, parse_caption
from curator.dataset import Item
from curator.tagaudit import AuditSettings, audit_captions, load_captions

TEXTS = [
    "a photo of a cat",
    "masterpiece, 1girl, (blue_eyes:1.2), \\(artist\\), looking_at_viewer",
    "Ünïcödé café naïve, 日本語 テキスト, Straße",
    "it's   a\ttest, don't, we'll, I'd",
    "emoji 🎨🔥 mixed, sks person, <lora:foo:0.8>",
    ", ".join(f"tag number {i}, ornate_frame_{i}" for i in range(40)),
    "",
]


def test_batched_token_starts_equal_single_counts_and_cuts() -> None:
    starts = tk.token_starts_batch(TEXTS)
    for text, offsets in zip(TEXTS, starts, strict=True):
        assert len(offsets) == tk.count_tokens(text), text
        for limit in (1, 5, 75, 150):
            expected = tk.cut_position(text, limit)
            got = offsets[limit] if len(offsets) > limit else None
            assert got == expected, (text, limit)
    assert len(starts[5]) > 150  # the long caption really is cut at every limit tried


def test_normalized_tags_are_cached_and_equal_uncached() -> None:
    caption = parse_caption("(Blue_Eyes:1.2), \\(artist\\), [smile], blue  eyes")
    plain = tuple(normalize_tag.__wrapped__(t) for t in caption.tags)  # the function without its cache
    assert caption.normalized == plain == ("blue eyes", "(artist)", "smile", "blue eyes")
    assert caption.normalized is caption.normalized  # computed once per caption
    assert caption == parse_caption(caption.text)  # the cached value is not part of equality


def _dataset(tmp_path: Path, count: int) -> list[Item]:
    folder = tmp_path / "10_sks"
    folder.mkdir()
    items = []
    for i in range(count):
        head = ["1girl", "sks"] if i % 5 == 1 else ["sks" if i % 4 else "other", "1girl"]
        tags = head + [f"detail_{(i * 7 + k) % 23}" for k in range(8 + i % 30)]
        (folder / f"{i}.txt").write_text(", ".join(tags) + "\n")
        items.append(Item(folder / f"{i}.png", f"10_sks/{i}.png", "sks", 10, folder / f"{i}.txt"))
    return items


def test_audit_findings_equal_without_the_token_offsets(tmp_path: Path) -> None:
    records = load_captions(_dataset(tmp_path, 40))
    settings = AuditSettings(trigger="sks", max_token_length=75)
    cached = audit_captions(records, settings).findings
    # the same records with the offsets dropped: every cut is computed by the tokenizer again
    plain = audit_captions([replace(r, token_starts=None) for r in records], settings).findings
    assert [f.to_json() for f in cached] == [f.to_json() for f in plain]
    assert {"caption_too_long", "trigger_missing", "trigger_not_first"} <= {f.code for f in cached}
    assert all(r.tokens == tk.count_tokens(r.trained_text) for r in records)
