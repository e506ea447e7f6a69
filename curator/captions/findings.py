"""Caption findings: one small function per problem, over a :class:`~curator.captions.audit.CaptionAudit`.

Regularization items are checked for readable captions only (they are class images: no trigger, no tag stats).
"""

from __future__ import annotations

from collections import Counter

from curator.captions.audit import UNCOUNTED, CaptionAudit, CaptionRecord, contains_trigger, finding
from curator.findings import Finding, Severity

#: every code this module emits
CODES = (
    "caption_missing",
    "caption_empty",
    "caption_not_utf8",
    "caption_multiline",
    "caption_too_large",
    "caption_too_long",
    "tag_duplicate",
    "trigger_missing",
    "trigger_not_first",
    "keep_tokens_unstable",
    "tag_rare",
    "tag_everywhere",
    "tag_conflict",
)


def file_findings(r: CaptionRecord) -> list[Finding]:
    """Missing, empty, undecodable and multi-line caption files."""
    path, f = r.item.rel, r.file
    if f.status == "missing":
        if r.item.is_reg:
            return []  # class images usually train on the class token alone
        return [
            finding(
                "caption_missing",
                Severity.WARNING,
                "No caption file: training uses the folder's class words or an empty caption",
                {"expected": str(r.item.path.with_suffix(".txt").name)},
                path,
            )
        ]
    if f.status == "not_utf8":
        return [
            finding(
                "caption_not_utf8",
                Severity.ERROR,
                "Caption is not UTF-8: Kohya stops with a decode error; re-save it as UTF-8",
                {"caption": str(f.path), "error": f.error},
                path,
            )
        ]
    out = []
    if f.too_large:
        out.append(
            finding(
                "caption_too_large",
                Severity.WARNING,
                "Caption file is larger than 64 KiB: only its start was read (training reads the first line)",
                {"caption": str(f.path)},
                path,
            )
        )
    if f.status == "empty":
        message = (
            "Caption file is empty (0 bytes): Kohya stops with an assertion"
            if f.zero_bytes
            else "Caption's first line is blank: the image trains with an empty caption"
        )
        severity = Severity.ERROR if f.zero_bytes else Severity.WARNING
        out.append(finding("caption_empty", severity, message, {"caption": str(f.path)}, path))
    if f.extra_lines:
        out.append(
            finding(
                "caption_multiline",
                Severity.INFO,
                f"Caption has {f.extra_lines} more line(s) after the first: training reads the first line only",
                {"caption": str(f.path), "ignored_lines": f.extra_lines},
                path,
            )
        )
    return out


def _cut_tags(r: CaptionRecord, limit: int) -> list[str]:
    assert r.caption is not None
    cut = r.cut_position(limit)
    if cut is None:
        return []
    lost, start = [], 0
    for tag in r.tags:
        end = start + len(tag)
        if end > cut:
            lost.append(tag)
        start = end + 2  # ", "
    return lost


def too_long(r: CaptionRecord, limit: int) -> list[Finding]:
    """``caption_too_long``: more CLIP tokens than training reads; names the tags that are cut off."""
    if r.caption is None or r.tokens <= limit:
        return []
    lost = _cut_tags(r, limit)
    shown = ", ".join(f"'{t}'" for t in lost[:6]) + (" ..." if len(lost) > 6 else "")
    return [
        finding(
            "caption_too_long",
            Severity.WARNING,
            f"Caption is {r.tokens} CLIP tokens; training reads {limit}: {shown} never reach the model "
            "(with shuffle_caption a different random part is lost each step)",
            {"tokens": r.tokens, "limit": limit, "cut_tags": lost},
            r.item.rel,
        )
    ]


def duplicates(r: CaptionRecord) -> list[Finding]:
    """``tag_duplicate``: the same tag twice in one caption (after normalisation)."""
    if r.caption is None:
        return []
    counts = Counter(r.normalized)
    doubled = sorted(tag for tag, n in counts.items() if n > 1)
    if not doubled:
        return []
    return [
        finding(
            "tag_duplicate",
            Severity.INFO,
            f"Repeated tag(s) {', '.join(repr(t) for t in doubled)}: they waste tokens (tags --dedupe fixes it)",
            {"tags": doubled, "counts": {t: counts[t] for t in doubled}},
            r.item.rel,
        )
    ]


def trigger_findings(records: list[CaptionRecord], trigger: str, explicit: bool) -> list[Finding]:
    """``trigger_missing`` / ``trigger_not_first`` for one concept's captions.

    When the trigger comes from the folder name and no caption holds it, one dataset-wide finding replaces a
    finding per image (the folder name may simply not be meant as a trigger)."""
    readable = [r for r in records if r.caption and not r.item.is_reg]
    missing = [r for r in readable if not any(contains_trigger(t, trigger) for t in r.normalized)]
    if not readable or not trigger:
        return []
    if missing and len(missing) == len(readable) and not explicit:
        return [
            finding(
                "trigger_missing",
                Severity.WARNING,
                f"No caption of concept '{records[0].item.concept}' holds its folder name '{trigger}': "
                "pass --trigger WORD, or add it (tags --add-trigger)",
                {"trigger": trigger, "captions": len(readable), "concept": records[0].item.concept},
            )
        ]
    out = [
        finding(
            "trigger_missing",
            Severity.WARNING,
            f"Caption lacks the trigger '{trigger}'",
            {"trigger": trigger},
            r.item.rel,
        )
        for r in missing
    ]
    missing_ids = {id(r) for r in missing}  # identity, not dataclass equality: O(n), not O(n^2) deep compares
    for r in readable:
        tags = r.normalized
        if id(r) not in missing_ids and tags and not contains_trigger(tags[0], trigger):
            out.append(
                finding(
                    "trigger_not_first",
                    Severity.WARNING,
                    f"Trigger '{trigger}' is not the first tag: with shuffle_caption it moves around unless kept "
                    "(tags --move-to-front)",
                    {"trigger": trigger, "first_tag": r.tags[0]},
                    r.item.rel,
                )
            )
    return out


def keep_tokens_findings(
    records: list[CaptionRecord], n: int, stable: float, configured: bool = True
) -> list[Finding]:
    """``keep_tokens_unstable``: captions whose first ``n`` tags differ from the concept's common prefix.

    With a configured keep_tokens: a dataset-wide finding with the distribution when the common prefix is shared by
    fewer than ``stable`` of the captions, and an info finding per deviating caption. With the advised value
    (``configured`` False) only the deviating captions of a stable prefix are named."""
    lists = [(r, r.normalized) for r in records if r.caption and not r.caption.has_separator]
    if n <= 0 or not lists:
        return []
    prefixes = Counter(tags[:n] for _, tags in lists)
    common, count = prefixes.most_common(1)[0]
    share = count / len(lists)
    concept = records[0].item.concept
    out = []
    if share < stable and not configured:
        return []
    if share < stable:
        out.append(
            finding(
                "keep_tokens_unstable",
                Severity.WARNING,
                f"keep_tokens={n}: the first {n} tags of '{concept}' captions are the same in only {share:.0%} "
                "of them, so different tags are kept in place per image",
                {
                    "keep_tokens": n,
                    "share": round(share, 4),
                    "concept": concept,
                    "prefixes": [{"prefix": list(p), "captions": c} for p, c in prefixes.most_common(5)],
                },
            )
        )
    for r, tags in lists:
        if tags[:n] != common:
            out.append(
                finding(
                    "keep_tokens_unstable",
                    Severity.INFO,
                    f"First {n} tag(s) {list(r.tags[:n])} differ from the usual {list(common)}",
                    {"keep_tokens": n, "prefix": list(tags[:n]), "common": list(common)},
                    r.item.rel,
                )
            )
    return out


def frequency_findings(audit: CaptionAudit) -> list[Finding]:
    """``tag_rare`` (a tag in one caption of the whole training set) and ``tag_everywhere`` (a tag in at least
    ``everywhere_fraction`` of the captions, the concepts' triggers excepted)."""
    settings = audit.settings
    train = [r for r in audit.records if r.caption and not r.item.is_reg]
    if len(train) < settings.min_captions_for_stats:
        return []
    frequency: Counter[str] = Counter()
    for r in train:
        frequency.update(set(r.normalized))
    exempt = {c.trigger for c in audit.concepts.values()}
    out = []
    for tag, count in sorted(frequency.items()):
        share = count / len(train)
        if share >= settings.everywhere_fraction and not any(contains_trigger(tag, t) for t in exempt):
            out.append(
                finding(
                    "tag_everywhere",
                    Severity.INFO,
                    f"'{tag}' is in {share:.0%} of captions: it tells the images apart from nothing, so the model "
                    "binds it to everything (drop it, or keep it as part of the trigger)",
                    {
                        "tag": tag,
                        "captions": count,
                        "share": round(share, 4),
                        "threshold": settings.everywhere_fraction,
                    },
                )
            )
    for r in train:
        rare = sorted({t for t in r.normalized if frequency[t] == 1})
        if rare:
            out.append(
                finding(
                    "tag_rare",
                    Severity.INFO,
                    f"Tag(s) found in no other caption: {', '.join(repr(t) for t in rare[:6])} "
                    "(a typo, or too rare to be learned)",
                    {"tags": rare},
                    r.item.rel,
                )
            )
    return out


def conflict_findings(r: CaptionRecord, pairs: tuple[tuple[str, str], ...]) -> list[Finding]:
    """``tag_conflict``: both tags of a mutually exclusive pair in one caption."""
    if r.caption is None:
        return []
    tags = set(r.normalized)
    hits = [[a, b] for a, b in pairs if a in tags and b in tags]
    if not hits:
        return []
    text = "; ".join(f"'{a}' and '{b}'" for a, b in hits)
    return [
        finding("tag_conflict", Severity.WARNING, f"Contradicting tags: {text}", {"pairs": hits}, r.item.rel)
    ]


def caption_findings(audit: CaptionAudit) -> list[Finding]:
    """Every caption finding of the audit, per item first, then dataset-wide."""
    settings = audit.settings
    out: list[Finding] = []
    for r in audit.records:
        out += file_findings(r)
        if r.item.is_reg:
            continue
        out += too_long(r, settings.max_token_length)
        out += duplicates(r)
        out += conflict_findings(r, settings.conflicts)
    by_concept: dict[str, list[CaptionRecord]] = {}
    for r in audit.records:
        by_concept.setdefault(r.item.concept, []).append(r)
    for name, records in by_concept.items():
        concept = audit.concepts[name]
        if concept.is_reg:
            continue
        out += trigger_findings(records, concept.trigger, explicit=bool(settings.trigger))
        configured = settings.keep_tokens is not None
        n = settings.keep_tokens if settings.keep_tokens is not None else concept.keep_tokens.n
        out += keep_tokens_findings(records, n, settings.stable_fraction, configured)
    out += frequency_findings(audit)
    if any(r.tokens == UNCOUNTED for r in audit.records if r.caption):
        out.append(
            finding(
                "caption_too_long",
                Severity.INFO,
                "Caption lengths not checked: the CLIP vocabulary (open-clip-torch) is not installed",
                {"reason": "tokenizer_unavailable"},
            )
        )
    return out
