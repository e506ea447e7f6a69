"""The keeper of a duplicate group: a training image, not a screenshot, fewest quality findings, then the largest."""

from __future__ import annotations

from pathlib import Path

from curator.checks.keeper import choose_keeper, rank_for_keeping
from curator.dataset.discover import Item
from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord


def _rec(
    rel: str, w: int, h: int, codes: tuple[str, ...] = (), reg: bool = False, **metrics: object
) -> ItemRecord:
    item = Item(path=Path(rel), rel=rel, concept="c", repeats=1, is_reg=reg)
    findings = [Finding(c, Severity.WARNING, c, {}, rel) for c in codes]
    return ItemRecord(item=item, metrics=dict(metrics), findings=findings, width=w, height=h, decoded=True)


def test_screenshot_and_damaged_copies_lose_to_a_smaller_clean_one() -> None:
    big_shot = _rec("shot.png", 2000, 2000, codes=("screenshot",))
    big_blocky = _rec("blocky.jpg", 1800, 1800, codes=("jpeg_low_quality",), jpeg_quality=10)
    clean = _rec("clean.png", 800, 800)
    assert choose_keeper([big_shot, big_blocky, clean]) is clean
    assert rank_for_keeping([big_shot, big_blocky, clean]) == [clean, big_blocky, big_shot]


def test_training_beats_regularization_and_size_then_quality_decide() -> None:
    reg = _rec("reg/a.png", 4000, 4000, reg=True)
    small = _rec("a_small.jpg", 500, 500, jpeg_quality=95)
    big_lowq = _rec("a_big.jpg", 1000, 1000, jpeg_quality=70)
    big_hiq = _rec("a_big2.jpg", 1000, 1000, jpeg_quality=92)
    assert choose_keeper([reg, small, big_lowq, big_hiq]) is big_hiq
    assert choose_keeper([reg, small]) is small


def _hashed(rel: str, plain: int, mirror: int) -> ItemRecord:
    """A record whose hashes say: this picture, and its mirror image hashes as ``mirror`` (crops match nothing
    better than the plain hash)."""
    hashes = {}
    for kind in ("phash", "dhash"):
        for variant, value in (("", plain), ("_mirror", mirror), ("_crop", plain), ("_crop_mirror", mirror)):
            hashes[f"{kind}{variant}"] = f"{value:016x}"
    return _rec(rel, 800, 600, **hashes)


def test_a_pair_does_not_say_which_one_is_mirrored_and_a_majority_does() -> None:
    from curator.checks.keeper import traits

    h, m = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    original, flipped = _hashed("original.png", h, m), _hashed("flipped.png", m, h)
    assert all("mirrored" not in t.marks for t in traits([original, flipped]).values())
    trio = traits([original, _hashed("original_copy.png", h, m), flipped])
    assert "mirrored" in trio["flipped.png"].marks
    assert "mirrored" not in trio["original.png"].marks and "mirrored" not in trio["original_copy.png"].marks
