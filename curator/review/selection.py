"""Which items an export keeps, and why: review decisions first, then the severity policy and duplicate clusters.

Policy, in order (the first rule that applies wins):

1. a review decision in the workspace (keep or drop, with its reason);
2. an image that could not be decoded is dropped;
3. a member of a duplicate cluster that is not the cluster's keeper is dropped (``exact_duplicate`` and
   ``near_duplicate`` findings name the keeper in ``evidence["keeper"]``; a keeper chosen in review wins);
4. an item with an error finding is dropped; an item with a warning of a code in ``drop_codes`` too; with
   ``strict`` an item with any warning finding;
5. everything else is kept.

Example::

    verdicts = select(result, DecisionStore(ws), SelectionOptions(strict=True))
    dropped = [v for v in verdicts.values() if not v.kept]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from curator.findings import Severity
from curator.review.decisions import DecisionStore, cluster_key
from curator.scan.results import ItemRecord, ScanResult

DUPLICATE_CODES = ("exact_duplicate", "near_duplicate")


@dataclass
class SelectionOptions:
    """How the export policy treats findings."""

    strict: bool = False  # drop items with warnings as well as errors
    drop_codes: tuple[str, ...] = ()  # drop items with warnings of these codes too (``--drop CODE``)
    drop_duplicates: bool = True  # drop duplicate-cluster members other than the keeper


@dataclass
class Verdict:
    """Kept or dropped, the rule that decided (``review``, ``unreadable``, ``duplicate``, ``error``, ``warning``,
    ``subset``, ``policy``), and a one-line reason for the manifest."""

    rel: str
    kept: bool
    rule: str
    reason: str
    codes: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    """A duplicate cluster: its members (sorted), its keeper and the store key of the cluster."""

    key: str
    members: list[str]
    keeper: str


def _find(parent: dict[str, str], x: str) -> str:
    while parent.setdefault(x, x) != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def duplicate_clusters(result: ScanResult, chosen: dict[str, str] | None = None) -> list[Cluster]:
    """The duplicate clusters of a scan, from the duplicate findings' ``evidence["keeper"]`` (union-find).

    ``chosen`` maps cluster keys to keepers picked in review; a chosen keeper that is a member wins. Otherwise the
    member named as keeper most often wins (ties: the path that sorts first).
    """
    chosen = chosen or {}
    parent: dict[str, str] = {}
    named: Counter[str] = Counter()
    known = {r.item.rel for r in result.records}
    for finding in result.all_findings():
        keeper = finding.evidence.get("keeper") if finding.code in DUPLICATE_CODES else None
        if not finding.path or not isinstance(keeper, str) or keeper not in known:
            continue
        parent[_find(parent, finding.path)] = _find(parent, keeper)
        named[keeper] += 1
    groups: dict[str, list[str]] = {}
    for rel in parent:
        groups.setdefault(_find(parent, rel), []).append(rel)
    clusters = []
    for members in groups.values():
        members.sort()
        key = cluster_key(members)
        picked = chosen.get(key)
        if picked not in members:
            picked = next((v for v in chosen.values() if v in members), None)
        if picked is None:
            picked = min(members, key=lambda m: (-named[m], m))
        clusters.append(Cluster(key, members, picked))
    clusters.sort(key=lambda c: c.members[0])
    return clusters


def _severity_verdict(record: ItemRecord, options: SelectionOptions) -> Verdict:
    rel = record.item.rel
    own = [f for f in record.findings if f.code not in DUPLICATE_CODES]
    errors = [f.code for f in own if f.severity is Severity.ERROR]
    if errors:
        return Verdict(rel, False, "error", "error: " + ", ".join(sorted(set(errors))), sorted(set(errors)))
    warnings = [f.code for f in own if f.severity is Severity.WARNING]
    dropped = sorted({c for c in warnings if options.strict or c in options.drop_codes})
    if dropped:
        why = "--strict" if options.strict else "--drop"
        return Verdict(rel, False, "warning", f"warning ({why}): " + ", ".join(dropped), dropped)
    note = "kept with warnings: " + ", ".join(sorted(set(warnings))) if warnings else "no error findings"
    return Verdict(rel, True, "policy", note, sorted(set(warnings)))


def select(
    result: ScanResult,
    store: DecisionStore | None = None,
    options: SelectionOptions | None = None,
    clusters: list[Cluster] | None = None,
) -> dict[str, Verdict]:
    """A verdict for every item of the scan, in the scan's order (see the module docstring for the rules).

    ``clusters`` are the duplicate clusters already built with the store's keepers (built here when None). Callers
    outside :mod:`curator.review.curation` want :func:`~curator.review.curation.build_curation` instead."""
    options = options or SelectionOptions()
    decisions = store.all() if store is not None else {}
    if clusters is None:
        clusters = duplicate_clusters(result, store.keepers() if store is not None else {})
    keeper_of = {m: c.keeper for c in clusters for m in c.members}
    verdicts: dict[str, Verdict] = {}
    for record in result.records:
        rel = record.item.rel
        decision = decisions.get(rel)
        if decision is not None:
            kept = decision.action == "keep"
            verdicts[rel] = Verdict(
                rel, kept, "review", f"review: {decision.action} {decision.reason}".strip()
            )
        elif not record.decoded:
            codes = sorted({f.code for f in record.findings})
            verdicts[rel] = Verdict(rel, False, "unreadable", "image could not be decoded", codes)
        elif options.drop_duplicates and rel in keeper_of and keeper_of[rel] != rel:
            keeper = keeper_of[rel]
            verdicts[rel] = Verdict(rel, False, "duplicate", f"duplicate of {keeper}", ["duplicate"])
        else:
            verdicts[rel] = _severity_verdict(record, options)
    return verdicts


def kept(verdicts: dict[str, Verdict]) -> list[str]:
    """The relative paths kept, in order."""
    return [rel for rel, v in verdicts.items() if v.kept]


def summarize(verdicts: Iterable[Verdict]) -> Counter[str]:
    """Number of items per rule (``policy`` counts the kept ones)."""
    return Counter(v.rule if not v.kept or v.rule != "review" else "review_keep" for v in verdicts)
