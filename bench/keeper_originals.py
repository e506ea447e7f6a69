"""How often the automatic keeper of a duplicate cluster is the original, on bench_dev's labelled clusters.

Usage::

    .venv/bin/python bench/keeper_originals.py [--data DIR]

bench_dev's ``near_dup_of:``/``exact_dup_of:`` rows name their ``original``; files sharing a ``group`` show the same
picture. Two measures per rule:

- labelled groups: the keeper chosen among every scanned member of a manifest group that has an original (keeping a
  byte-identical copy of the original counts as keeping it); "natural" groups are pairs shipped in packages (stereo
  pairs, edits, relit variants), where either file may fairly be called the original;
- found clusters: the keeper of each cluster the scan itself found (exact + near duplicates) that holds an original.

Rules compared in the same run: ours (:func:`curator.checks.keeper.choose_keeper`), and two common peers: "largest"
(most pixels, then larger file: what most dedup scripts keep) and "first" (the first path, as imagededup and
cleanvision list a set). The metrics come from the same cached workspace as bench/detectors.py (bench/results/ws).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from detectors import DEFAULT_DATA, RESULTS, load_manifest  # noqa: E402

from curator.checks.keeper import choose_keeper, keeper_reason  # noqa: E402
from curator.dataset.discover import Concept, Dataset, Item  # noqa: E402
from curator.review.selection import duplicate_clusters  # noqa: E402
from curator.scan.results import ItemRecord, ScanResult, ScanSettings  # noqa: E402
from curator.scan.run import scan  # noqa: E402

Rule = Callable[[list[ItemRecord]], ItemRecord]


def largest(records: list[ItemRecord]) -> ItemRecord:
    """The peer rule most scripts use: most pixels, then the larger file."""
    return max(records, key=lambda r: (r.width * r.height, r.metrics.get("file_size") or 0))


def first(records: list[ItemRecord]) -> ItemRecord:
    """The first path (imagededup and cleanvision report a set in listing order)."""
    return min(records, key=lambda r: r.item.rel)


RULES: dict[str, Rule] = {"dreamcurate": choose_keeper, "largest": largest, "first": first}


def scan_bench(data: Path, rows: list[dict[str, str]]) -> ScanResult:
    """The product's scan of the images as one plain concept (cached in bench/results/ws, shared with detectors)."""
    folder = data / "images"
    items = [Item(path=data / r["path"], rel=r["path"], concept="bench", repeats=1) for r in rows]
    dataset = Dataset(root=folder, concepts=[Concept("bench", 1, folder, items=items)], layout="plain")
    return scan(folder, ScanSettings(workspace=RESULTS / "ws", progress=False), dataset=dataset)


def labelled_groups(rows: list[dict[str, str]]) -> list[tuple[str, list[str], bool]]:
    """(original, members, synthetic) per manifest group with a named original (synthetic: made by a script)."""
    originals: dict[str, str] = {}
    natural: set[str] = set()
    for r in rows:
        if r["original"] and r["group"]:
            originals[r["group"]] = r["original"]
            if r["transform"].startswith("natural:"):
                natural.add(r["group"])
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r["group"] in originals:
            groups.setdefault(r["group"], []).append(r["path"])
    return [(originals[g], sorted(m), g not in natural) for g, m in sorted(groups.items()) if len(m) > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--show", action="store_true", help="print every group where our keeper is not the original"
    )
    args = parser.parse_args()
    rows = load_manifest(args.data)
    result = scan_bench(args.data, rows)
    records = {r.item.rel: r for r in result.records if r.decoded}
    labelled = [(o, [records[m] for m in ms if m in records], s) for o, ms, s in labelled_groups(rows)]
    labelled = [(o, ms, s) for o, ms, s in labelled if len(ms) > 1 and o in records]
    truth = {o for o, _, _ in labelled}
    same = _byte_copies(rows, truth)
    found = [
        [records[m] for m in c.members if m in records]
        for c in duplicate_clusters(result)
        if truth & set(c.members)
    ]
    print(f"{len(labelled)} labelled groups with an original, {len(found)} found clusters holding one")
    print(f"{'rule':12} {'synthetic':>10} {'natural':>10} {'found':>10}")
    for name, rule in RULES.items():
        synth = [rule(ms).item.rel in same[o] for o, ms, s in labelled if s]
        nat = [rule(ms).item.rel in same[o] for o, ms, s in labelled if not s]
        hits = [any(rule(ms).item.rel in same[o] for o in truth) for ms in found]
        print(f"{name:12} {_ratio(synth):>10} {_ratio(nat):>10} {_ratio(hits):>10}")
    if args.show:
        transforms = {r["path"]: r["transform"][:40] for r in rows}
        for original, members, _ in labelled:
            if choose_keeper(members).item.rel not in same[original]:
                print(f"\noriginal {original}: {keeper_reason(members)}")
                for m in members:
                    print(
                        f"   {m.item.rel} {m.width}x{m.height} q{m.metrics.get('jpeg_quality')}: {transforms[m.item.rel]}"
                    )


def _byte_copies(rows: list[dict[str, str]], originals: set[str]) -> dict[str, set[str]]:
    """Each original with its byte-identical copies (keeping any of them keeps the original)."""
    sha = {r["path"]: r["sha256"] for r in rows}
    return {o: {p for p, h in sha.items() if h == sha[o]} for o in originals}


def _ratio(hits: list[bool]) -> str:
    return f"{sum(hits)}/{len(hits)}" if hits else "-"


if __name__ == "__main__":
    main()
