"""Diverse subsets (--target-size) and balanced repeats."""

from __future__ import annotations

from pathlib import Path

from curator.export.folder import export_dataset
from curator.review.curation import Policy, build_curation
from curator.review.subset import balanced_repeats, diverse_subset
from tests._report_fixtures import build_result, dup


def _big(tmp_path: Path):  # type: ignore[no-untyped-def]
    files = [f"i{n:02d}.png" for n in range(12)]
    findings = {"10_cat/i05.png": [dup("10_cat/i11.png")], "10_cat/i07.png": [dup("10_cat/i09.png")]}
    return build_result(tmp_path / "data", {"cat": (10, files), "dog": (2, ["x.png", "y.png"])}, findings)


def test_target_size_is_deterministic_and_keeps_keepers(tmp_path: Path) -> None:
    result = _big(tmp_path)
    first = build_curation(result, None, Policy(target_size=4)).verdicts
    second = build_curation(result, None, Policy(target_size=4)).verdicts
    kept = sorted(r for r, v in first.items() if v.kept and r.startswith("10_cat"))
    assert kept == sorted(r for r, v in second.items() if v.kept and r.startswith("10_cat"))
    assert len(kept) == 4
    assert "10_cat/i11.png" in kept and "10_cat/i09.png" in kept  # keepers of both clusters
    assert not first["10_cat/i05.png"].kept and first["10_cat/i05.png"].rule == "duplicate"
    left_out = [v for v in first.values() if v.rule == "subset"]
    assert len(left_out) == 12 - 2 - 4 and all("subset" in v.reason for v in left_out)
    assert first["2_dog/x.png"].kept  # a small concept is untouched


def test_subset_covers_the_set(tmp_path: Path) -> None:
    """Two tight groups of near-identical hashes: a subset of 2 takes one from each."""
    result = build_result(tmp_path / "d", {"cat": (1, [f"{n}.png" for n in range(6)])})
    for n, record in enumerate(sorted(result.records, key=lambda r: r.item.rel)):
        record.metrics["phash"] = ("0000000000000000" if n < 3 else "ffffffffffffffff")[:-1] + str(n)
    chosen = diverse_subset(result.records, 2)
    groups = {int(Path(rel).stem) < 3 for rel in chosen}
    assert groups == {True, False}


def test_subset_without_hash_metrics_reads_the_files(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (1, [f"{n}.png" for n in range(5)])})
    for record in result.records:
        record.metrics.clear()
    assert diverse_subset(result.records, 3) == diverse_subset(result.records, 3)
    assert len(diverse_subset(result.records, 3)) == 3


def test_balanced_repeats() -> None:
    assert balanced_repeats({"cat": (100, 1), "dog": (20, 1), "none": (0, 3)}) == {
        "cat": 1,
        "dog": 5,
        "none": 3,
    }


def test_balance_puts_repeats_in_folder_names(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (1, [f"{n}.png" for n in range(4)]), "dog": (1, ["x.png"])})
    report = export_dataset(build_curation(result, None, Policy(balance=True)), tmp_path / "out")
    assert sorted(f.rel for f in report.folders) == ["img/1_cat", "img/4_dog"]
    assert (tmp_path / "out/img/4_dog/x.png").exists()


def test_subset_prefers_clip_embeddings_when_present(tmp_path: Path) -> None:
    """Hashes say one thing, embeddings another: the embeddings win (cosine distance)."""
    result = build_result(tmp_path / "d", {"cat": (1, [f"{n}.png" for n in range(6)])})
    for n, record in enumerate(sorted(result.records, key=lambda r: r.item.rel)):
        record.metrics["phash"] = "0000000000000000"
        record.metrics["clip_embedding"] = [1.0, 0.01 * n, 0.0] if n % 2 else [0.0, 0.01 * n, 1.0]
    chosen = diverse_subset(result.records, 2)
    assert {int(Path(rel).stem) % 2 for rel in chosen} == {0, 1}
