"""The warm-path caches give the same answers as the plain computations they replace."""

from __future__ import annotations

import json
import random
from array import array
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from curator.captions import tokenizer as tk
from curator.captions.audit import AuditSettings, audit_captions, load_captions, load_workspace_captions
from curator.captions.parse import normalize_tag, parse_caption
from curator.cli import cli
from curator.dataset.discover import Item
from curator.dataset.workspace import Workspace
from curator.report.html import _Report
from curator.review.curation import build_curation
from curator.scan.cache import TokenCache, open_token_cache
from curator.scan.results import ScanResult, ScanSettings
from curator.scan.run import scan

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


def test_empty_texts_have_no_tokens_and_load_no_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset without captions (every trained text empty) counts without loading the tokenizer."""
    monkeypatch.setattr(tk, "_backend", _no_tokenizer)
    assert tk.token_starts_batch(["", ""]) == [array("I"), array("I")]
    monkeypatch.undo()
    mixed = tk.token_starts_batch(["", "sks, a cat", ""])
    assert [len(s) for s in mixed] == [0, tk.count_tokens("sks, a cat"), 0]


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


def _no_tokenizer(texts: list[str]) -> list:
    raise AssertionError(f"tokenized again: {texts[:2]}")


def test_token_cache_counts_equal_and_skip_the_tokenizer(tmp_path: Path, monkeypatch) -> None:
    items = _dataset(tmp_path, 12)
    plain = load_captions(items)
    cache = TokenCache(tmp_path / "cache.sqlite", version="clip-test")
    first = load_captions(items, cache)
    monkeypatch.setattr(tk, "token_starts_batch", _no_tokenizer)
    second = load_captions(items, cache)  # every text known: no tokenizer call
    for a, b, c in zip(plain, first, second, strict=True):
        assert a.tokens == b.tokens == c.tokens and a.token_starts == b.token_starts == c.token_starts
    monkeypatch.undo()
    items[0].caption_path.write_text("sks, an edited caption\n")  # a new text is counted, never served stale
    edited = load_captions(items, cache)[0]
    assert edited.tokens == tk.count_tokens("sks, an edited caption") != plain[0].tokens
    stale = TokenCache(
        tmp_path / "cache.sqlite", version="clip-other"
    )  # another tokenizer version: all misses
    assert stale.get_many([r.trained_text for r in plain]) == {}
    cache.close()
    stale.close()


def test_cached_rescan_reports_the_same_without_tokenizing(tmp_path: Path, monkeypatch) -> None:
    items = _dataset(tmp_path, 12)
    for item in items:
        Image.new("RGB", (32, 24), (len(item.rel) * 9 % 255, 40, 90)).save(item.path)
    settings = ScanSettings(workers=1, progress=False, trigger="sks")
    first = scan(tmp_path, settings)
    monkeypatch.setattr(tk, "token_starts_batch", _no_tokenizer)
    second = scan(tmp_path, settings)
    assert second.cached == len(items)
    assert _findings(second) == _findings(first)
    assert "caption_too_long" in {f["code"] for f in _findings(first)}


def _findings(result: ScanResult) -> list[dict]:
    return [f.to_json() for f in result.findings] + [f.to_json() for r in result.records for f in r.findings]


def _caption_views(result: ScanResult, root: Path) -> tuple[dict, str, dict]:
    """What ``tags --json``, the report's tag section and the export hand-off show of the captions."""
    workspace = [] if result.settings.workspace is None else ["--workspace", str(result.settings.workspace)]
    out = CliRunner().invoke(cli, ["tags", str(root), "--trigger", "sks", "--json", "-", *workspace])
    assert out.exit_code == 0, out.output
    curation = build_curation(result)
    report = _Report(curation, None)
    assert curation.audit is not None  # the curation's audit ran (it falls back silently on any error)
    return json.loads(out.output), report.tags_section(), curation.keep_tokens()


def test_tags_report_and_handoff_use_the_scan_token_cache(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "data"
    root.mkdir()
    items = _dataset(root, 12)
    # distinct noise, big enough to keep: the curation (the export's hand-off) audits what export keeps
    for n, item in enumerate(items):
        Image.frombytes("RGB", (72, 64), random.Random(n).randbytes(72 * 64 * 3)).save(item.path)
    result = scan(root, ScanSettings(workers=1, progress=False, trigger="sks"))
    # without a workspace folder: counted the plain way, and no folder is created (a read-only dataset stays so)
    nowhere = tmp_path / "no-workspace"
    plain = _caption_views(replace(result, settings=replace(result.settings, workspace=nowhere)), root)
    assert not nowhere.exists()
    monkeypatch.setattr(tk, "token_starts_batch", _no_tokenizer)
    cached = _caption_views(result, root)  # the scan's counts: no tokenizer call at all
    assert cached == plain
    assert "caption_too_long" in {f["code"] for f in cached[0]["findings"]} and cached[2]["sks"] >= 1


def test_open_token_cache_never_creates_a_workspace_and_survives_a_bad_file(tmp_path: Path) -> None:
    items = _dataset(tmp_path, 6)
    plain = load_captions(items)
    missing = Workspace(tmp_path / "absent")
    assert load_workspace_captions(items, missing) == plain and not missing.root.exists()
    assert load_workspace_captions(items, None) == plain
    broken = Workspace(tmp_path / "ws")
    broken.root.mkdir()
    broken.cache_db.write_bytes(b"not a database at all, just bytes" * 40)
    with open_token_cache(broken.cache_db) as cache:
        assert cache is None  # unreadable: count instead of failing
    assert load_workspace_captions(items, broken) == plain
    good = Workspace(tmp_path / "ws2")
    good.root.mkdir()
    assert load_workspace_captions(items, good) == plain  # an existing folder gets the cache file
    with open_token_cache(good.cache_db) as cache:
        assert cache is not None and len(cache.get_many([r.trained_text for r in plain])) == len(
            {r.trained_text for r in plain}
        )
