"""The one curation: every item kept or dropped (with the rule and the reason), the duplicate clusters with their
keepers, the repeats the export writes, the review's caption edits and the caption audit of what is kept.

It is built once per command from the scan result, the review decisions and the policy. ``plan``, the report, the
TUI, ``export`` and ``run`` all read it; none of them selects again.

Example::

    curation = build_curation(result, DecisionStore(workspace), Policy(drop_codes=("screenshot",)))
    curation.kept_count, curation.left_out()          # 87, {'review': 2, 'duplicate': 4, ...}
    plan = plan_curation(curation, PlanOptions(TrainConfig(train_batch_size=2)))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from curator.dataset.discover import Concept, Dataset
from curator.review.decisions import DecisionStore
from curator.review.selection import Cluster, SelectionOptions, Verdict, duplicate_clusters, select
from curator.review.subset import balanced_repeats, diverse_subset
from curator.scan.results import ScanResult

if TYPE_CHECKING:
    from curator.captions.audit import CaptionAudit
    from curator.plan.build import Plan, PlanOptions

#: Words for each rule that leaves an item out, as summaries print them
RULE_WORDS = {
    "review": "dropped in review",
    "unreadable": "unreadable",
    "duplicate": "duplicates (the keeper stays)",
    "error": "with error findings",
    "warning": "with warnings of dropped codes",
    "subset": "outside the diverse subset",
}


@dataclass(frozen=True)
class Policy:
    """What the export keeps besides the review's decisions (the defaults: drop errors, keep warnings)."""

    strict: bool = False  # drop every item with a warning too
    drop_codes: tuple[str, ...] = ()  # drop items with a warning of these codes too (errors always drop)
    target_size: int | None = None  # per training concept: keep at most N images, the N that cover it best
    balance: bool = False  # write repeats that balance the concepts (the plan counts those)

    def to_json(self) -> dict[str, Any]:
        """Plain data, for the manifest and the plan's JSON."""
        return {
            "strict": self.strict,
            "drop_codes": list(self.drop_codes),
            "target_size": self.target_size,
            "balance": self.balance,
        }


@dataclass
class Curation:
    """What training will see of a dataset. Build it with :func:`build_curation`."""

    result: ScanResult
    policy: Policy
    verdicts: dict[str, Verdict]
    clusters: list[Cluster]
    suggested_repeats: dict[str, int]  # repeats that would balance the training concepts
    edits: dict[str, str] = field(default_factory=dict)  # rel -> caption saved in review

    @property
    def repeats(self) -> dict[str, int]:
        """Concept -> the repeats the export writes (balanced with ``policy.balance``, else the folder's)."""
        if self.policy.balance:
            return dict(self.suggested_repeats)
        return {c.name: c.repeats for c in self.result.dataset.concepts if not c.is_reg}

    @cached_property
    def kept(self) -> frozenset[str]:
        """The relative paths kept."""
        return frozenset(rel for rel, v in self.verdicts.items() if v.kept)

    @property
    def kept_count(self) -> int:
        """Training images kept (regularization images not counted)."""
        return sum(1 for r in self.result.records if not r.item.is_reg and r.item.rel in self.kept)

    def left_out(self) -> dict[str, int]:
        """Rule -> items left out by it, in a stable order."""
        counts = Counter(v.rule for v in self.verdicts.values() if not v.kept)
        return dict(sorted(counts.items()))

    def left_out_text(self) -> str:
        """One line: what was left out and why ('' when nothing was)."""
        return ", ".join(f"{n} {RULE_WORDS.get(rule, rule)}" for rule, n in self.left_out().items())

    @cached_property
    def dataset(self) -> Dataset:
        """The dataset with only the kept items, and the repeats the export writes."""
        repeats = self.repeats
        concepts = []
        for c in self.result.dataset.concepts:
            n = c.repeats if c.is_reg else repeats.get(c.name, c.repeats)
            items = [replace(i, repeats=n) for i in c.items if i.rel in self.kept]
            concepts.append(Concept(c.name, n, c.folder, c.is_reg, items))
        return replace(self.result.dataset, concepts=concepts, findings=list(self.result.dataset.findings))

    @cached_property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """rel -> (width, height) as training reads it (EXIF orientation applied) of every kept item."""
        return {
            r.item.rel: (r.width, r.height)
            for r in self.result.records
            if r.item.rel in self.kept and r.decoded and r.width > 0 and r.height > 0
        }

    @cached_property
    def audit(self) -> CaptionAudit | None:
        """The caption audit of the kept training items as the export writes them (review edits applied); None
        when it cannot run (the audit is advice: an export without it is still right)."""
        try:
            from curator.captions.audit import AuditSettings, audit_captions, load_workspace_captions
            from curator.dataset.workspace import Workspace

            s = self.result.settings
            items = [i for i in self.dataset.items if not i.is_reg]
            workspace = Workspace.for_dataset(self.result.dataset.root, s.workspace)
            records = load_workspace_captions(items, workspace, self.edits)
            return audit_captions(
                records, AuditSettings(trigger=s.trigger, max_token_length=s.max_token_length)
            )
        except Exception:
            return None

    def keep_tokens(self) -> dict[str, int]:
        """The audit's advised keep_tokens per training concept ({} without an audit)."""
        audit = self.audit
        return {name: c.keep_tokens.n for name, c in audit.concepts.items()} if audit else {}

    def to_json(self) -> dict[str, Any]:
        """The curation's headline as plain data (the plan JSON and the report carry it)."""
        return {
            "policy": self.policy.to_json(),
            "items": len(self.verdicts),
            "kept": len(self.kept),
            "kept_training_images": self.kept_count,
            "left_out": self.left_out(),
            "repeats": self.repeats,
            "clusters": len(self.clusters),
        }


def build_curation(
    result: ScanResult, store: DecisionStore | None = None, policy: Policy | None = None
) -> Curation:
    """The curation of a scan: review decisions first, then the policy (see :mod:`curator.review.selection`), then
    the diverse subset; a keeper the user chose always stays, also under ``target_size``."""
    policy = policy or Policy()
    keepers = store.keepers() if store is not None else {}
    clusters = duplicate_clusters(result, keepers)
    options = SelectionOptions(strict=policy.strict, drop_codes=policy.drop_codes)
    verdicts = select(result, store, options, clusters)
    if policy.target_size is not None:
        _apply_subset(result, verdicts, policy.target_size, {c.keeper for c in clusters})
    counts = {
        c.name: (sum(verdicts[i.rel].kept for i in c.items), c.repeats)
        for c in result.dataset.concepts
        if not c.is_reg
    }
    edits = store.captions() if store is not None else {}
    return Curation(result, policy, verdicts, clusters, balanced_repeats(counts), edits)


def _apply_subset(result: ScanResult, verdicts: dict[str, Verdict], size: int, keepers: set[str]) -> None:
    """Mark the items a diverse subset leaves out (per training concept) with rule ``subset``; the keepers of
    duplicate clusters and the items kept in review are chosen first."""
    for concept in result.dataset.concepts:
        if concept.is_reg:
            continue
        records = [result.record(i.rel) for i in concept.items if verdicts[i.rel].kept]
        if len(records) <= size:
            continue
        forced = {
            r.item.rel for r in records if r.item.rel in keepers or verdicts[r.item.rel].rule == "review"
        }
        chosen = set(diverse_subset(records, size, forced=forced))
        for r in records:
            if r.item.rel not in chosen:
                verdicts[r.item.rel] = Verdict(
                    r.item.rel, False, "subset", f"left out of the diverse subset of {size}", ["subset"]
                )


def plan_curation(curation: Curation, options: PlanOptions | None = None) -> Plan:
    """The plan of what the curation keeps, with these settings: the one plan every surface shows."""
    from curator.plan.build import PlanOptions, build_plan

    plan = build_plan(curation.dataset, curation.sizes, options or PlanOptions())
    plan.curation = curation.to_json()
    return plan
