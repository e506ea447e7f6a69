"""Detector benchmark on bench_dev: precision / recall / FPR per label for dreamcurate, cleanvision and imagededup.

Usage::

    .venv/bin/python bench/detectors.py [--data DIR] [--fresh] [--no-peers]

Every tool sees the same decodable images (labels corrupt / bomb / too_small are left out: they are the loader's
business, and the peers crash or stall on them). Per label:

- blurry, jpeg_artifacts (ours: jpeg_low_quality or jpeg_artifacts), screenshot: per image; FPR over the clean
  ``ok`` images (photos, artwork, clipart, with the hard negatives in them).
- duplicate pairs: every pair of files sharing a ``group`` is a positive; a tool predicts a pair when it puts both
  files in one duplicate set (ours: exact_duplicate + near_duplicate clusters). FPR over all other pairs.

Our metrics are cached in a workspace under bench/results/ (gitignored); ``--fresh`` measures again (and times it).
The run also times the near-duplicate search over 100,000 random hashes on one core.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curator.checks.near_duplicate import VARIANTS, NearDuplicates, find_pairs  # noqa: E402
from curator.dataset.discover import Concept, Dataset, Item  # noqa: E402
from curator.scan.results import ScanSettings  # noqa: E402
from curator.scan.run import scan  # noqa: E402

# ../shared/bench_dev beside the checkout; from a git worktree one level deeper, one level further up
DEFAULT_DATA = next(
    (
        p
        for p in (REPO / ".." / "shared" / "bench_dev", REPO / ".." / ".." / "shared" / "bench_dev")
        if p.is_dir()
    ),
    REPO / ".." / "shared" / "bench_dev",
)
RESULTS = REPO / "bench" / "results"
SKIP_LABELS = ("corrupt", "bomb", "too_small")
IMAGE_LABELS = {
    "blurry": ("blurry",),
    "jpeg_artifacts": ("jpeg_low_quality", "jpeg_artifacts"),
    "screenshot": ("screenshot",),
}


@dataclass
class ToolResult:
    """What one tool predicted: flagged paths per label, duplicate sets, and its wall time."""

    name: str
    flagged: dict[str, set[str]] = field(default_factory=dict)
    dup_sets: list[set[str]] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""


def load_manifest(data: Path) -> list[dict[str, str]]:
    """The manifest rows of the images every tool is scored on."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r["label"].split(":")[0] not in SKIP_LABELS]


def run_ours(data: Path, rows: list[dict[str, str]], fresh: bool) -> ToolResult:
    """Scan the images as one plain concept (the product's own scan, cached in bench/results/ws)."""
    workspace = RESULTS / "ws"
    timing_file = RESULTS / "ours_timing.json"
    if fresh and workspace.exists():
        shutil.rmtree(workspace)
    folder = data / "images"
    items = [Item(path=data / r["path"], rel=r["path"], concept="bench", repeats=1) for r in rows]
    dataset = Dataset(root=folder, concepts=[Concept("bench", 1, folder, items=items)], layout="plain")
    settings = ScanSettings(workspace=workspace, progress=False)
    started = time.perf_counter()
    result = scan(folder, settings, dataset=dataset)
    seconds = time.perf_counter() - started
    if result.analysed == len(rows):
        RESULTS.mkdir(parents=True, exist_ok=True)
        timing_file.write_text(json.dumps({"seconds": seconds, "images": len(rows)}))
    elif timing_file.exists():
        seconds = json.loads(timing_file.read_text())["seconds"]
    out = ToolResult("dreamcurate", seconds=seconds)
    for label, codes in IMAGE_LABELS.items():
        out.flagged[label] = {f.path for f in result.all_findings() if f.code in codes and f.path}
    clusters: dict[str, set[str]] = {}
    for f in result.all_findings():
        if f.code in ("exact_duplicate", "near_duplicate") and f.path:
            keeper = f.evidence["keeper"]
            clusters.setdefault(keeper, {keeper}).add(f.path)
    out.dup_sets = _merge_sets(list(clusters.values()))
    return out


def run_cleanvision(data: Path, rows: list[dict[str, str]]) -> ToolResult:
    """cleanvision's blurry, near_duplicates and exact_duplicates issue types, default thresholds."""
    from cleanvision import Imagelab

    paths = [str(data / r["path"]) for r in rows]
    started = time.perf_counter()
    lab = Imagelab(filepaths=paths, verbose=False)
    lab.find_issues({"blurry": {}, "near_duplicates": {}, "exact_duplicates": {}}, verbose=False)
    seconds = time.perf_counter() - started
    rel = {str(data / r["path"]): r["path"] for r in rows}
    issues = lab.issues
    out = ToolResult("cleanvision", seconds=seconds)
    out.flagged["blurry"] = {rel[p] for p in issues.index[issues["is_blurry_issue"]]}
    sets = []
    for kind in ("near_duplicates", "exact_duplicates"):
        sets += [{rel[p] for p in s} for s in lab.info[kind]["sets"]]
    out.dup_sets = _merge_sets(sets)
    return out


def run_imagededup(data: Path, rows: list[dict[str, str]]) -> ToolResult:
    """imagededup's PHash with max_distance_threshold 10 (its default), over a folder of links to the images."""
    from imagededup.methods import PHash

    links = RESULTS / "imagededup_links"
    if links.exists():
        shutil.rmtree(links)
    links.mkdir(parents=True)
    names = {}
    for r in rows:
        name = Path(r["path"]).name
        os.symlink((data / r["path"]).resolve(), links / name)
        names[name] = r["path"]
    started = time.perf_counter()
    hasher = PHash(verbose=False)
    encodings = hasher.encode_images(image_dir=links)
    dups = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
    seconds = time.perf_counter() - started
    sets = [{names[a], *(names[b] for b in bs)} for a, bs in dups.items() if bs]
    return ToolResult("imagededup PHash", dup_sets=_merge_sets(sets), seconds=seconds)


def _merge_sets(sets: list[set[str]]) -> list[set[str]]:
    """Union overlapping sets (duplicate sets are transitive: a set is a cluster)."""
    merged: list[set[str]] = []
    for s in sets:
        overlapping = [m for m in merged if m & s]
        for m in overlapping:
            merged.remove(m)
            s = s | m
        merged.append(set(s))
    return merged


def _pairs(sets: list[set[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for s in sets for p in itertools.combinations(sorted(s), 2)}  # type: ignore[misc]


def score_images(rows: list[dict[str, str]], label: str, flagged: set[str]) -> dict[str, float]:
    """Precision and recall over every image, FPR over the clean ``ok`` images."""
    positive = {r["path"] for r in rows if r["label"] == label}
    clean = {r["path"] for r in rows if r["label"] == "ok"}
    tp = len(flagged & positive)
    return {
        "precision": tp / len(flagged) if flagged else 1.0,
        "recall": tp / len(positive) if positive else 0.0,
        "fpr": len(flagged & clean) / len(clean),
        "n": len(positive),
    }


def score_pairs(rows: list[dict[str, str]], sets: list[set[str]]) -> dict[str, float]:
    """Pair precision / recall / FPR: positives are pairs that share a manifest ``group``."""
    by_group: dict[str, list[str]] = {}
    for r in rows:
        if r["group"]:
            by_group.setdefault(r["group"], []).append(r["path"])
    truth = _pairs([set(v) for v in by_group.values()])
    predicted = _pairs(sets)
    total = len(rows) * (len(rows) - 1) // 2
    tp = len(predicted & truth)
    return {
        "precision": tp / len(predicted) if predicted else 1.0,
        "recall": tp / len(truth) if truth else 0.0,
        "fpr": (len(predicted) - tp) / (total - len(truth)),
        "n": len(truth),
    }


def time_search(n: int = 100_000) -> float:
    """Seconds for the near-duplicate pair search (all hash variants, default thresholds) over n random items."""
    rng = np.random.default_rng(0)
    columns = {
        f"{kind}{v}": [f"{x:016x}" for x in rng.integers(0, 2**63, size=n, dtype=np.int64).tolist()]
        for v in VARIANTS
        for kind in ("phash", "dhash")
    }
    metrics = [{k: col[i] for k, col in columns.items()} for i in range(n)]
    started = time.perf_counter()
    find_pairs(metrics, NearDuplicates.defaults, engine="numpy")
    return time.perf_counter() - started


def print_table(rows: list[dict[str, str]], tools: list[ToolResult]) -> None:
    """One line per (label, tool); ratios against the best peer on the same label."""
    n_images = len(rows)
    print(f"\nbench_dev: {n_images} decodable images (corrupt / bomb / too_small left out)\n")
    header = f"{'label':<16}{'tool':<18}{'n':>5}{'precision':>11}{'recall':>8}{'FPR':>7}"
    print(header)
    print("-" * len(header))
    for label in (*IMAGE_LABELS, "duplicate pairs"):
        for tool in tools:
            if label == "duplicate pairs":
                if not tool.dup_sets and tool.name != "dreamcurate":
                    continue
                s = score_pairs(rows, tool.dup_sets)
            elif label in tool.flagged:
                s = score_images(rows, label, tool.flagged[label])
            else:
                continue
            print(
                f"{label:<16}{tool.name:<18}{s['n']:>5}{s['precision']:>11.3f}{s['recall']:>8.3f}{s['fpr']:>7.3f}"
            )
    print("\nspeed (all checks for dreamcurate; 2 worker processes each where the tool has workers)")
    ours = tools[0].seconds
    for tool in tools:
        ratio = f"  ({tool.seconds / ours:.2f}x dreamcurate's time)" if tool is not tools[0] else ""
        print(f"  {tool.name:<18}{n_images / tool.seconds:8.1f} images/s{ratio}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BENCH_DEV", DEFAULT_DATA)))
    parser.add_argument(
        "--fresh", action="store_true", help="measure again instead of using the cached metrics"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip cleanvision and imagededup")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    rows = load_manifest(data)
    tools = [run_ours(data, rows, args.fresh)]
    if not args.no_peers:
        tools.append(run_cleanvision(data, rows))
        tools.append(run_imagededup(data, rows))
    print_table(rows, tools)
    print(
        f"\nnear-duplicate search, 100,000 random items x 4 hash variants, numpy, one core (bench/dup_search.py: compiled): {time_search():.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
