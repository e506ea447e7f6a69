"""The caption and tag audit: what the model will actually read, before any GPU time is spent.

Reads every caption once (:func:`load_captions`), then computes tag frequency tables per concept, the keep_tokens
advice, CLIP token lengths, and the caption findings (``caption_missing``, ``caption_empty``, ``caption_not_utf8``,
``caption_multiline``, ``caption_too_long``, ``tag_duplicate``, ``trigger_missing``, ``trigger_not_first``,
``keep_tokens_unstable``, ``tag_rare``, ``tag_everywhere``, ``tag_conflict``). ``scan`` reports the findings through
the ``captions`` dataset check; ``dreamcurate tags`` shows all of it.

Example::

    records = load_captions(dataset.items)
    audit = audit_captions(records, AuditSettings(trigger="sks"))
    for finding in audit.findings:
        print(finding.code, finding.path, finding.message)
    print(audit.concepts["sks"].keep_tokens.n)
"""

from __future__ import annotations

import re
import sqlite3
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from curator.captions.parse import Caption, CaptionFile, parse_caption, read_caption
from curator.dataset.discover import Item
from curator.findings import Finding, Severity

if TYPE_CHECKING:
    from curator.dataset.workspace import Workspace
    from curator.scan.cache import TokenCache

#: mutually exclusive tag pairs (normalised form); a caption holding both contradicts itself
DEFAULT_CONFLICTS: tuple[tuple[str, str], ...] = (
    ("looking at viewer", "looking away"),
    ("looking at viewer", "closed eyes"),
    ("smile", "frown"),
    ("open mouth", "closed mouth"),
    ("solo", "multiple girls"),
    ("solo", "multiple boys"),
    ("solo", "2girls"),
    ("indoors", "outdoors"),
    ("day", "night"),
    ("short hair", "long hair"),
    ("standing", "sitting"),
    ("monochrome", "full color"),
)


@dataclass(frozen=True)
class AuditSettings:
    """Parameters of the caption audit (each with the reason it has this default)."""

    trigger: str | None = None  # the trigger word; None: each concept's name from its folder
    max_token_length: int = 75  # CLIP tokens training reads: 75, or 150 / 225 with --max_token_length
    keep_tokens: int | None = None  # the keep_tokens you train with; None: check the advised value
    stable_fraction: float = 0.9  # a tag prefix shared by this share of captions counts as stable
    everywhere_fraction: float = 0.95  # a tag in at least this share of captions carries no information
    min_captions_for_stats: int = 10  # frequency-based findings (rare, everywhere) need this many captions
    conflicts: tuple[tuple[str, str], ...] = DEFAULT_CONFLICTS  # pairs of tags that contradict each other


#: ``CaptionRecord.tokens`` when the CLIP tokenizer is not available
UNCOUNTED = -1


@dataclass(frozen=True)
class CaptionRecord:
    """One item's caption: the file read, the parsed tags (None unless the file read ``ok``), CLIP tokens."""

    item: Item
    file: CaptionFile
    caption: Caption | None
    tokens: int = 0
    #: where each CLIP token of :attr:`trained_text` starts (from the same batched call that counted them), so
    #: naming the tags past the limit needs no second tokenizer pass; None when not counted
    token_starts: array[int] | None = field(default=None, compare=False, repr=False)

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags as written (empty without a readable caption)."""
        return self.caption.tags if self.caption else ()

    @property
    def normalized(self) -> tuple[str, ...]:
        """The normalised tags (empty without a readable caption)."""
        return self.caption.normalized if self.caption else ()

    def cut_position(self, limit: int) -> int | None:
        """The character offset in :attr:`trained_text` where training cuts it after ``limit`` CLIP tokens (None:
        it fits); :func:`curator.captions.tokenizer.cut_position`, answered from the counted offsets when there are any."""
        if self.token_starts is None:
            from curator.captions import tokenizer

            return tokenizer.cut_position(self.trained_text, limit)
        return self.token_starts[limit] if len(self.token_starts) > limit else None

    @property
    def trained_text(self) -> str:
        """The caption as training joins it (tags joined with ``", "``, ``|||`` removed), unshuffled."""
        return ", ".join(self.caption.tags) if self.caption else ""


def load_captions(
    items: Iterable[Item], token_cache: TokenCache | None = None, edits: Mapping[str, str] | None = None
) -> list[CaptionRecord]:
    """Read and parse every item's caption and count its CLIP tokens (one batched tokenizer call).

    With a ``token_cache`` (the scan passes its own) texts counted before are not tokenized again, and when all
    are known the tokenizer is not even loaded: that is most of a cached rescan's time. ``edits`` (rel -> caption
    saved in review) replace the file's text: the audit reads what the export will write."""
    edits = edits or {}
    read = [(item, _edited(read_caption(item.caption_path), edits.get(item.rel))) for item in items]
    return records_for_files(read, token_cache)


def records_for_files(
    read: Sequence[tuple[Item, CaptionFile]], token_cache: TokenCache | None = None
) -> list[CaptionRecord]:
    """:func:`load_captions` over caption files already read (or about to be written: ``caption`` audits the
    captions it would write before it writes them)."""
    parsed = [(item, f, parse_caption(f.text) if f.status == "ok" else None) for item, f in read]
    texts = [", ".join(c.tags) if c else "" for _, _, c in parsed]
    known = _token_starts(texts, token_cache)
    return [
        CaptionRecord(item, f, c, UNCOUNTED if s is None else len(s), s)
        for (item, f, c), s in zip(parsed, (known.get(t) for t in texts), strict=True)
    ]


def _edited(file: CaptionFile, edit: str | None) -> CaptionFile:
    """The caption file as the export writes it: the review's edit when there is one."""
    if edit is None:
        return file
    return replace(file, status="ok", text=edit.splitlines()[0].strip() if edit.strip() else "")


def load_workspace_captions(
    items: Iterable[Item], workspace: Workspace | None, edits: Mapping[str, str] | None = None
) -> list[CaptionRecord]:
    """:func:`load_captions` with the token counts a scan stored in ``workspace`` (``tags``, the report and the
    export hand-off use it): only texts the scan has not seen are tokenized. Without a workspace folder it counts
    the plain way and creates nothing."""
    from curator.scan.cache import open_token_cache

    with open_token_cache(workspace.cache_db if workspace is not None else None) as cache:
        return load_captions(items, cache, edits)


def _token_starts(texts: list[str], token_cache: TokenCache | None) -> dict[str, array[int]]:
    """text -> CLIP token starts for every distinct text (empty when the tokenizer is unavailable)."""
    from curator.captions import tokenizer

    known: dict[str, array[int]] = {}
    if token_cache is not None:
        with suppress(sqlite3.Error):  # the cache only saves time: a broken one means counting again
            known = token_cache.get_many(texts)
    todo = sorted(set(texts) - known.keys())
    if not todo:
        return known
    try:
        fresh = dict(zip(todo, tokenizer.token_starts_batch(todo), strict=True))
    except tokenizer.TokenizerUnavailable:
        return {}  # the audit says so in a finding; everything else still works
    if token_cache is not None:
        with suppress(sqlite3.Error):
            token_cache.put_many(fresh)
    return known | fresh


def concept_trigger(concept: str, settings: AuditSettings) -> str:
    """The trigger of a concept: the explicit one, else the concept (folder) name, normalised."""
    from curator.captions.parse import normalize_tag

    return normalize_tag(settings.trigger if settings.trigger else concept)


def contains_trigger(tag: str, trigger: str) -> bool:
    """True when normalised ``tag`` is the trigger or holds it as whole words (``ohwx woman`` holds ``ohwx``)."""
    if not trigger or trigger not in tag:  # the substring test first: the regex runs only on a candidate
        return False
    return tag == trigger or re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", tag) is not None


@dataclass
class KeepTokensAdvice:
    """The advised ``keep_tokens`` for one concept and the evidence behind it.

    ``n`` is the largest N whose first N tags are the same in at least ``stable_fraction`` of captions, raised so
    that the trigger is always kept. ``distribution`` lists, for N = 1, 2, ..., the most common prefix and the
    share of captions that have it. ``uses_separator`` counts captions that mark their prefix with ``|||`` (Kohya
    then ignores keep_tokens for them).
    """

    n: int
    prefix: tuple[str, ...]
    distribution: list[dict[str, Any]]
    reason: str
    uses_separator: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "keep_tokens": self.n,
            "prefix": list(self.prefix),
            "distribution": self.distribution,
            "reason": self.reason,
            "captions_with_separator": self.uses_separator,
        }


def _prefix_shares(tag_lists: Sequence[tuple[str, ...]], max_n: int = 8) -> list[dict[str, Any]]:
    total = len(tag_lists)
    rows = []
    for n in range(1, max_n + 1):
        prefixes = Counter(tags[:n] for tags in tag_lists if len(tags) >= n)
        if not prefixes:
            break
        prefix, count = prefixes.most_common(1)[0]
        rows.append({"n": n, "prefix": list(prefix), "captions": count, "share": round(count / total, 4)})
    return rows


def advise_keep_tokens(
    tag_lists: Sequence[tuple[str, ...]], trigger: str, stable_fraction: float = 0.9, uses_separator: int = 0
) -> KeepTokensAdvice:
    """The keep_tokens advice for the normalised tag lists of one concept (see :class:`KeepTokensAdvice`)."""
    if not tag_lists:
        return KeepTokensAdvice(0, (), [], "no captions to read", uses_separator)
    rows = _prefix_shares(tag_lists)
    stable = [row for row in rows if row["share"] >= stable_fraction]
    n = stable[-1]["n"] if stable else 0
    # Keeping every tag leaves nothing to shuffle: leave at least one tag of the median caption free.
    lengths = sorted(len(tags) for tags in tag_lists)
    n = min(n, max(0, lengths[len(lengths) // 2] - 1))
    positions = Counter(
        next((i for i, tag in enumerate(tags) if contains_trigger(tag, trigger)), -1) for tags in tag_lists
    )
    # the most common position of the trigger (the earliest on a tie; -1: absent)
    trigger_pos = max(positions, key=lambda pos: (positions[pos], pos >= 0, -pos))
    if trigger_pos >= 0 and trigger_pos + 1 > n:
        n = trigger_pos + 1
        reason = f"keeps the trigger '{trigger}' (usually tag {trigger_pos + 1}) in place"
    elif n:
        share = rows[n - 1]["share"]
        reason = f"the first {n} tag(s) are the same in {share:.0%} of captions"
    else:
        reason = (
            f"no tag prefix is shared by {stable_fraction:.0%} of captions and the trigger '{trigger}' "
            "is not in them: put the trigger first and keep 1"
        )
    prefix = tuple(rows[n - 1]["prefix"]) if 0 < n <= len(rows) else ()
    return KeepTokensAdvice(n, prefix, rows, reason, uses_separator)


@dataclass
class ConceptAudit:
    """Per-concept results: captions read, tag frequency (normalised tag -> captions holding it), the written
    form seen most often for each tag, token lengths and the keep_tokens advice."""

    name: str
    trigger: str
    captions: int
    frequency: Counter[str]
    display: dict[str, str]
    token_lengths: list[int]
    keep_tokens: KeepTokensAdvice
    is_reg: bool = False

    def to_json(self, top: int = 50) -> dict[str, Any]:
        """Plain JSON data (the ``top`` most frequent tags)."""
        lengths = sorted(self.token_lengths)
        return {
            "name": self.name,
            "trigger": self.trigger,
            "is_reg": self.is_reg,
            "captions": self.captions,
            "distinct_tags": len(self.frequency),
            "tags": [
                {"tag": tag, "written": self.display.get(tag, tag), "captions": count}
                for tag, count in self.frequency.most_common(top)
            ],
            "tokens": {
                "min": lengths[0] if lengths else 0,
                "median": lengths[len(lengths) // 2] if lengths else 0,
                "max": lengths[-1] if lengths else 0,
            },
            "keep_tokens": self.keep_tokens.to_json(),
        }


@dataclass
class CaptionAudit:
    """The whole audit: per-concept results and every caption finding."""

    records: list[CaptionRecord]
    concepts: dict[str, ConceptAudit]
    findings: list[Finding] = field(default_factory=list)
    settings: AuditSettings = field(default_factory=AuditSettings)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (schema ``dreamcurate.tags/1``)."""
        return {
            "schema": "dreamcurate.tags/1",
            "max_token_length": self.settings.max_token_length,
            "concepts": [c.to_json() for c in self.concepts.values()],
            "captions": [
                {"path": r.item.rel, "status": r.file.status, "tokens": r.tokens, "tags": len(r.caption.tags)}
                for r in self.records
                if r.caption
            ],
            "findings": [f.to_json() for f in self.findings],
        }


def _concept_audit(name: str, records: list[CaptionRecord], settings: AuditSettings) -> ConceptAudit:
    trigger = concept_trigger(name, settings)
    frequency: Counter[str] = Counter()
    written: defaultdict[str, Counter[str]] = defaultdict(Counter)  # normalised -> written forms
    tag_lists = []
    separators = 0
    for r in records:
        if r.caption is None:
            continue
        separators += r.caption.has_separator
        tag_lists.append(r.caption.normalized)
        frequency.update(
            dict.fromkeys(r.caption.normalized, 1)
        )  # each tag once per caption, in a fixed order
        for raw, norm in zip(r.caption.tags, r.caption.normalized, strict=True):
            written[norm][raw] += 1
    display = {tag: forms.most_common(1)[0][0] for tag, forms in written.items()}
    advice = advise_keep_tokens(tag_lists, trigger, settings.stable_fraction, separators)
    return ConceptAudit(
        name,
        trigger,
        len(tag_lists),
        frequency,
        display,
        [r.tokens for r in records if r.caption],
        advice,
        is_reg=any(r.item.is_reg for r in records),
    )


def audit_captions(records: list[CaptionRecord], settings: AuditSettings | None = None) -> CaptionAudit:
    """Tag tables, keep_tokens advice and findings over loaded caption records."""
    from curator.captions.findings import caption_findings

    settings = settings or AuditSettings()
    by_concept: dict[str, list[CaptionRecord]] = {}
    for r in records:
        by_concept.setdefault(r.item.concept, []).append(r)
    concepts = {name: _concept_audit(name, recs, settings) for name, recs in by_concept.items()}
    audit = CaptionAudit(records, concepts, settings=settings)
    audit.findings = caption_findings(audit)
    return audit


def finding(
    code: str, severity: Severity, message: str, evidence: dict[str, Any], path: str | None = None
) -> Finding:
    """A caption finding (shorthand used by :mod:`curator.captions.findings`)."""
    return Finding(code, severity, message, evidence, path)
