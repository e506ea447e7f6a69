"""Each caption finding on a crafted caption, the keep_tokens advice and the scan check wrapper."""

from __future__ import annotations

from pathlib import Path

from curator.captions.audit import AuditSettings, advise_keep_tokens, audit_captions, load_captions
from curator.checks.base import CheckContext
from curator.checks.captions import CaptionsCheck
from curator.dataset.discover import Item
from curator.scan.results import ItemRecord, ScanSettings


def _items(tmp_path: Path, captions: dict[str, str | bytes | None], concept: str = "sks") -> list[Item]:
    folder = tmp_path / f"10_{concept}"
    folder.mkdir(exist_ok=True)
    items = []
    for name, text in captions.items():
        image = folder / f"{name}.png"
        image.write_bytes(b"not decoded here")
        cap = folder / f"{name}.txt"
        if text is not None:
            cap.write_bytes(text if isinstance(text, bytes) else text.encode())
        items.append(Item(image, f"10_{concept}/{name}.png", concept, 10, cap if text is not None else None))
    return items


def _codes(items: list[Item], **settings) -> dict[str, list[str | None]]:
    audit = audit_captions(load_captions(items), AuditSettings(**settings))
    out: dict[str, list[str | None]] = {}
    for f in audit.findings:
        out.setdefault(f.code, []).append(f.path.split("/")[-1] if f.path else None)
    return out


def test_file_findings(tmp_path: Path) -> None:
    items = _items(
        tmp_path,
        {
            "ok": "sks, smile",
            "none": None,
            "zero": b"",
            "blank": b"\n\nsks",
            "latin": "sks, café".encode("latin-1"),
        },
    )
    codes = _codes(items)
    assert codes["caption_missing"] == ["none.png"]
    assert sorted(codes["caption_empty"]) == ["blank.png", "zero.png"]
    assert codes["caption_not_utf8"] == ["latin.png"]
    assert codes["caption_multiline"] == ["blank.png"]


def test_too_long_names_the_lost_tags(tmp_path: Path) -> None:
    filler = ", ".join(f"tag{i}" for i in range(40))  # 'tagN' is 2-3 tokens, plus commas: well past 75
    items = _items(tmp_path, {"long": f"sks, {filler}, very last tag", "short": "sks, smile"})
    audit = audit_captions(load_captions(items), AuditSettings())
    found = [f for f in audit.findings if f.code == "caption_too_long"]
    assert len(found) == 1 and found[0].path.endswith("long.png")
    ev = found[0].evidence
    assert ev["tokens"] > 75 and ev["limit"] == 75
    assert (
        ev["cut_tags"][-1] == "very last tag" and "sks" not in ev["cut_tags"] and "tag0" not in ev["cut_tags"]
    )
    # with max_token_length 225 the same caption fits
    assert "caption_too_long" not in _codes(items, max_token_length=225)


def test_duplicate_and_conflict(tmp_path: Path) -> None:
    items = _items(tmp_path, {"a": "sks, blue_eyes, (Blue Eyes:1.1), smile, frown", "b": "sks, solo"})
    codes = _codes(items)
    assert codes["tag_duplicate"] == ["a.png"]
    assert codes["tag_conflict"] == ["a.png"]


def test_trigger_missing_and_not_first(tmp_path: Path) -> None:
    items = _items(tmp_path, {"a": "sks, smile", "b": "smile, sks", "c": "smile, outdoors"})
    codes = _codes(items)
    assert codes["trigger_missing"] == ["c.png"]
    assert codes["trigger_not_first"] == ["b.png"]
    # explicit trigger overrides the folder name
    codes = _codes(items, trigger="smile")
    assert codes["trigger_not_first"] == ["a.png"] and "trigger_missing" not in codes


def test_folder_name_trigger_absent_everywhere_is_one_finding(tmp_path: Path) -> None:
    items = _items(tmp_path, {"a": "woman, smile", "b": "woman, hat"}, concept="my photos")
    codes = _codes(items)
    assert codes["trigger_missing"] == [None]
    assert "trigger_not_first" not in codes


def test_trigger_inside_a_tag_counts(tmp_path: Path) -> None:
    items = _items(tmp_path, {"a": "ohwx woman, smile"}, concept="ohwx")
    assert "trigger_missing" not in _codes(items) and "trigger_not_first" not in _codes(items)


def test_keep_tokens_unstable(tmp_path: Path) -> None:
    caps = {f"i{i}": "sks, woman, smile" for i in range(8)}
    caps.update({"odd1": "sks, man, smile", "odd2": "sks, hat, woman"})
    items = _items(tmp_path, caps)
    audit = audit_captions(load_captions(items), AuditSettings(keep_tokens=2))
    dataset_wide = [f for f in audit.findings if f.code == "keep_tokens_unstable" and f.path is None]
    per_item = sorted(f.path for f in audit.findings if f.code == "keep_tokens_unstable" and f.path)
    assert dataset_wide and dataset_wide[0].evidence["share"] == 0.8
    assert [p.split("/")[-1] for p in per_item] == ["odd1.png", "odd2.png"]
    # keep_tokens=1 is stable: nothing
    audit = audit_captions(load_captions(items), AuditSettings(keep_tokens=1))
    assert not [f for f in audit.findings if f.code == "keep_tokens_unstable"]


def test_rare_and_everywhere(tmp_path: Path) -> None:
    caps = {f"i{i}": f"sks, 1girl, {'smile' if i % 2 else 'hat'}" for i in range(11)}
    caps["typo"] = "sks, 1girl, smiel"
    items = _items(tmp_path, caps)
    audit = audit_captions(load_captions(items), AuditSettings())
    everywhere = [f.evidence["tag"] for f in audit.findings if f.code == "tag_everywhere"]
    assert everywhere == ["1girl"]  # the trigger 'sks' is exempt
    rare = [f for f in audit.findings if f.code == "tag_rare"]
    assert [f.path.split("/")[-1] for f in rare] == ["typo.png"] and rare[0].evidence["tags"] == ["smiel"]
    # too few captions: no statistics
    assert "tag_rare" not in _codes(items[:5])


def test_keep_tokens_advice() -> None:
    lists = [("sks", "woman", f"t{i}") for i in range(9)] + [("sks", "man", "hat")]
    advice = advise_keep_tokens(lists, "sks")
    assert advice.n == 2 and advice.prefix == ("sks", "woman")  # 90 % share 'sks, woman'
    assert advice.distribution[0] == {"n": 1, "prefix": ["sks"], "captions": 10, "share": 1.0}
    # the trigger is always kept even when no prefix is stable
    lists = [("smile", "sks")] * 5 + [("hat", "sks")] * 5
    assert advise_keep_tokens(lists, "sks").n == 2
    assert advise_keep_tokens([("a", "b"), ("c", "d")], "sks").n == 0


def test_reg_items_only_checked_for_readability(tmp_path: Path) -> None:
    reg = tmp_path / "reg" / "1_woman"
    reg.mkdir(parents=True)
    (reg / "r.png").write_bytes(b"x")
    (reg / "r.txt").write_text("woman, woman, smile, frown")
    items = [Item(reg / "r.png", "reg/1_woman/r.png", "woman", 1, reg / "r.txt", True)]
    items.append(Item(reg / "s.png", "reg/1_woman/s.png", "woman", 1, None, True))
    assert _codes(items) == {}


def test_scan_check_wrapper(tmp_path: Path) -> None:
    items = _items(tmp_path, {"a": "smile, sks", "b": "sks, hat"})
    records = [ItemRecord(item) for item in items]
    context = CheckContext(settings=ScanSettings(trigger="sks", max_token_length=75))
    findings = CaptionsCheck().run(records, {"conflicts": [["smile", "hat"]]}, context)
    assert [f.code for f in findings] == ["trigger_not_first"]
    assert "caption_audit" in context.cache
