"""The HTML quality report: one self-contained file a person opens before spending GPU hours.

Everything it says about what training gets (kept or dropped, clusters and keepers, the caption audit, the plan) is
the one curation's (:mod:`curator.review.curation`), the object export writes from.

Sections: a summary with a verdict, the training plan (when given), findings grouped by code with thumbnails and
evidence, dataset-wide findings, duplicate clusters side by side (keeper marked), tag frequency, bucket
distribution, metric histograms, and every image. Thumbnails are embedded as data URIs, the charts are inline
SVG, the style is inline CSS; there is no script and no external reference, and a Content-Security-Policy forbids
both. Every user-supplied string (file names, captions, tags, evidence) goes through :func:`html.escape`.

The JSON report is :meth:`curator.scan.results.ScanResult.to_json`.

Example::

    curation = build_curation(scan(Path("train")), store)
    write_html(curation, Path("report.html"), plan=plan_curation(curation, options))
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path
from typing import Any

from curator.findings import Finding, Severity
from curator.fsutil import atomic_write_text
from curator.plan.buckets import BucketSettings, select_bucket
from curator.report.assets import page
from curator.report.charts import bar_chart, histogram
from curator.report.thumbs import thumbnail_uri
from curator.review.curation import RULE_WORDS, Curation
from curator.review.selection import DUPLICATE_CODES
from curator.scan.results import ItemRecord
from curator.textsafe import safe_block

#: Cards shown per finding code before the rest are listed by name.
CARDS_PER_CODE = 48
#: Cards shown before the rest of a group is folded away.
CARDS_OPEN = 12
#: Images in the "all images" gallery.
GALLERY_LIMIT = 400
#: Previews one report embeds at most (flagged images first, then the gallery), so a report of 20,000 images stays a
#: size a browser opens; every image is still listed. Duplicate clusters shown at most (the JSON has them all).
THUMB_BUDGET = 600
MAX_CLUSTERS = 200
#: Members of one cluster shown as cards (the keeper first); the rest are named in one line. A scrape's cluster can
#: hold a hundred copies of one picture.
MAX_CLUSTER_CARDS = 12
#: Names listed after the cards of a large cluster.
MAX_CLUSTER_NAMES = 40
#: Metric histograms shown at most.
MAX_HISTOGRAMS = 9
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def write_html(curation: Curation, path: Path, plan: Any = None) -> Path:
    """Write the HTML report of ``curation`` (the scan, what is kept and why) to ``path`` atomically.

    ``plan`` is the training plan of the same curation (an object with ``to_json()``, or its JSON dict); None: no
    plan section. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # control characters of names and captions (an HTML parse error) and bytes that are not UTF-8 show as escapes
    atomic_write_text(path, safe_block(render_html(curation, plan)), errors="replace")
    return path


def render_html(curation: Curation, plan: Any = None) -> str:
    """The report as an HTML string (see :func:`write_html` for ``plan``)."""
    builder = _Report(curation, _plan_data(plan))
    return builder.render()


def _plan_data(plan: Any) -> dict[str, Any] | None:
    if not plan:
        return None
    if isinstance(plan, dict):
        return plan
    to_json = getattr(plan, "to_json", None)
    data = to_json() if callable(to_json) else None
    return data if isinstance(data, dict) else None


def _checkpoint_card(ckpt: dict[str, Any]) -> tuple[Any, str]:
    """The checkpoints' disk card: "22 MB" for a tiny model where "GB" would round to 0."""
    if not ckpt:
        return None, ""
    saves = f"({ckpt.get('count', '?')} saves)"
    if isinstance(ckpt.get("total_bytes"), (int, float)):
        from curator.plan.estimates import disk_size

        return disk_size(ckpt["total_bytes"]), f"of checkpoints {saves}"
    return ckpt.get("total_gb"), f"GB of checkpoints {saves}"


def _fmt(value: Any, limit: int = 90) -> str:
    """A short, escaped rendering of an evidence or plan value."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value[:8]) + (f", \u2026 ({len(value)})" if len(value) > 8 else "")
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {v}" for k, v in list(value.items())[:6])
    else:
        text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return escape(text)


def _badge(severity: str) -> str:
    return f'<span class="badge {escape(severity)}">{escape(severity)}</span>'


def _caption_tags(record: ItemRecord) -> list[str]:
    """The comma-separated tags of the item's caption (first line, as Kohya reads it); [] without a caption."""
    path = record.item.caption_path
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    first = text.splitlines()[0] if text.strip() else ""
    return [t.strip() for t in first.replace("|||", ",").split(",") if t.strip()]


class _Report:
    """Builds the sections of one report; keeps the thumbnails it made so each image is encoded once."""

    def __init__(self, curation: Curation, plan: dict[str, Any] | None) -> None:
        self.curation = curation
        self.result = curation.result
        self.plan = plan
        self._thumbs: dict[str, str | None] = {}
        self.by_rel = {r.item.rel: r for r in self.result.records}

    # -- pieces ------------------------------------------------------------------------------------------------
    def thumb(self, rel: str) -> str:
        """An <img> of the item's thumbnail, or a placeholder when it cannot be shown."""
        record = self.by_rel.get(rel)
        if rel not in self._thumbs and len(self._thumbs) >= THUMB_BUDGET:
            return f'<div class="placeholder">no preview<br>(over {THUMB_BUDGET} in this report)</div>'
        if rel not in self._thumbs:
            ok = record is not None and record.decoded
            self._thumbs[rel] = thumbnail_uri(record.item.path) if ok and record is not None else None
        uri = self._thumbs[rel]
        if uri is None:
            return '<div class="placeholder">no preview<br>(not decoded)</div>'
        return f'<img src="{uri}" alt="{escape(rel)}" loading="lazy">'

    def card(
        self, rel: str, why: str = "", evidence: dict[str, Any] | None = None, cls: str = "", title: str = ""
    ) -> str:
        """One image card: thumbnail, file name, whether export keeps it (and by which rule), a line of why
        (``title``: its full text), and evidence."""
        name = rel.rsplit("/", 1)[-1]
        why = self.fate(rel) + (" " + why if why else "")
        rows = "".join(
            f'<div><span class="k">{escape(str(key))}</span> {_fmt(value, 70)}</div>'
            for key, value in list((evidence or {}).items())[:6]
        )
        ev = f'<div class="ev">{rows}</div>' if rows else ""
        tip = f' title="{escape(title)}"' if title else ""
        why_html = f'<div class="why"{tip}>{why}</div>' if why else ""
        return (
            f'<div class="item {cls}"><div class="img">{self.thumb(rel)}</div><div class="cap">'
            f'<div class="name" title="{escape(rel)}">{escape(name)}</div>{why_html}{ev}</div></div>'
        )

    def fate(self, rel: str) -> str:
        """A badge: kept, or dropped with the rule (the curation's verdict, as export applies it)."""
        verdict = self.curation.verdicts.get(rel)
        if verdict is None:
            return ""
        if verdict.kept:
            return f'<span class="badge kept" title="{escape(verdict.reason)}">kept</span>'
        label = RULE_WORDS.get(verdict.rule, verdict.rule)
        return (
            f'<span class="badge dropped" title="{escape(verdict.reason)}">dropped: {escape(verdict.rule)}</span>'
            if label
            else ""
        )

    # -- sections ----------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """Headline numbers, a verdict sentence and the concepts table."""
        records = self.result.records
        worst = Counter(r.worst.value if r.worst else "clean" for r in records)
        kept = self.curation.kept_count
        clusters = self.curation.clusters
        train = sum(not r.item.is_reg for r in records)
        stats = [
            ("", train, "training images"),
            ("", len(records) - train, "regularization images"),
            ("", len(self.result.dataset.concepts), "concepts"),
            ("error", worst["error"], "images with errors"),
            ("warning", worst["warning"], "images with warnings"),
            ("ok", worst["clean"] + worst["info"], "images without problems"),
            ("", len(clusters), "duplicate clusters"),
            ("ok", kept, "training images an export keeps"),
        ]
        cards = "".join(
            f'<div class="stat {cls}"><div class="n">{n}</div><div class="l">{escape(label)}</div></div>'
            for cls, n, label in stats
            if not (label == "regularization images" and n == 0)
        )
        return (
            f'<section id="summary"><h2>Summary</h2><div class="stats">{cards}</div>'
            f"{self.verdict(worst)}{self.left_out()}{self.concepts_table()}</section>"
        )

    def left_out(self) -> str:
        """What the export leaves out and why (review, errors, duplicates, ...), as the curation decided it."""
        text = self.curation.left_out_text()
        if not text:
            return '<p class="muted">An export keeps every image.</p>'
        return f'<p id="left-out"><b>Left out of an export:</b> {escape(text)}.</p>'

    def verdict(self, worst: Counter[str]) -> str:
        """One sentence: should the user fix things before training?"""
        errors, warnings = worst["error"], worst["warning"]
        dropped = len(self.curation.verdicts) - len(self.curation.kept)
        if errors:
            cls = "bad"
            text = (
                f"<b>{errors} image(s) have errors</b> and would be left out of an export; "
                f"{warnings} more have warnings worth a look. {dropped} of {len(self.result.records)} images would "
                "be left out in all."
            )
        elif warnings:
            cls, text = (
                "meh",
                f"<b>No errors.</b> {warnings} image(s) have warnings: look at them below before training.",
            )
        else:
            cls, text = "good", "<b>No errors or warnings.</b> This dataset looks ready to train."
        return f'<div class="verdict {cls}">{text}</div>'

    def concepts_table(self) -> str:
        """Concept, repeats, images, images with errors / warnings."""
        rows = ""
        for concept in self.result.dataset.concepts:
            recs = [self.by_rel[i.rel] for i in concept.items if i.rel in self.by_rel]
            err = sum(r.worst is Severity.ERROR for r in recs)
            warn = sum(r.worst is Severity.WARNING for r in recs)
            kind = "regularization" if concept.is_reg else "training"
            rows += (
                f"<tr><td><b>{escape(concept.name)}</b></td><td>{kind}</td><td class=num>{concept.repeats}</td>"
                f"<td class=num>{len(recs)}</td><td class=num>{len(recs) * concept.repeats}</td>"
                f"<td class=num>{err}</td><td class=num>{warn}</td></tr>"
            )
        head = (
            "<tr><th>concept</th><th>kind</th><th class=num>repeats</th><th class=num>images</th>"
            "<th class=num>images x repeats</th><th class=num>errors</th><th class=num>warnings</th></tr>"
        )
        return f'<div class="card" style="margin-top:12px"><table>{head}{rows}</table></div>'

    def plan_section(self) -> str:
        """The training plan: headline numbers, the text-encoder explanation, size advice and notes."""
        plan = self.plan or {}
        if not plan:
            return ""
        stop = plan.get("stop_text_encoder_training")
        time_s = (plan.get("time") or {}).get("seconds") if isinstance(plan.get("time"), dict) else None
        ckpt: dict[str, Any] = plan["checkpoints"] if isinstance(plan.get("checkpoints"), dict) else {}
        headline = [
            (plan.get("total_steps"), "optimizer steps"),
            (plan.get("steps_per_epoch"), "steps per epoch"),
            (plan.get("epochs") or plan.get("max_train_epochs") or None, "epochs"),
            (stop if stop is not None else "end", "text encoder stops at step"),
            (plan.get("seed_formula_stop_step"), "tutorial formula stop step"),
            (plan.get("vram_gb"), "VRAM estimate (GB)"),
            (f"{time_s / 3600:.1f} h" if isinstance(time_s, (int, float)) else None, "time estimate"),
            _checkpoint_card(ckpt),
        ]
        cards = "".join(
            f'<div class="stat"><div class="n">{_fmt(value)}</div><div class="l">{escape(label)}</div></div>'
            for value, label in headline
            if value is not None and label
        )
        parts = [f'<div class="stats">{cards}</div>']
        if plan.get("te_explanation"):
            parts.append(f'<div class="verdict">{_fmt(plan["te_explanation"], 600)}</div>')
        parts.append(self._advice(plan))
        if not cards:  # a plan of another shape: show its scalar values
            rows = "".join(
                f"<tr><th>{escape(str(k))}</th><td>{_fmt(v, 300)}</td></tr>"
                for k, v in plan.items()
                if not isinstance(v, (dict, list))
            )
            parts.append(f'<div class="card"><table>{rows}</table></div>')
        return f'<section id="plan"><h2>Training plan</h2>{"".join(parts)}</section>'

    @staticmethod
    def _advice(plan: dict[str, Any]) -> str:
        """Size advice per concept, VRAM warnings and the planner's notes, as a list."""
        lines = []
        for advice in plan.get("size_advice") or []:
            if isinstance(advice, dict):
                verdict = str(advice.get("verdict", ""))
                cls = "info" if verdict in ("ok", "good", "") else "warning"
                label = (
                    f'<span class="badge {cls}">{escape(verdict.replace("_", " "))}</span> '
                    if verdict
                    else ""
                )
                text = advice.get("advice") or advice.get("message") or ""
                lines.append(
                    f"<li>{label}<b>{escape(str(advice.get('concept', '')))}</b>: {_fmt(text, 600)}</li>"
                )
        vram = plan.get("vram")
        warnings = vram.get("warnings") if isinstance(vram, dict) else None
        for warning in list(warnings or []) + list(plan.get("notes") or []):
            lines.append(f"<li>{_fmt(warning, 600)}</li>")
        if not lines:
            return ""
        return f'<div class="card" style="margin-top:12px"><ul class="advice">{"".join(lines)}</ul></div>'

    def findings_section(self) -> str:
        """Per-item findings grouped by code, worst first, with thumbnails and evidence."""
        groups: dict[str, list[Finding]] = {}
        for finding in (f for r in self.result.records for f in r.findings):
            groups.setdefault(finding.code, []).append(finding)
        if not groups:
            return '<section id="findings"><h2>Findings</h2><p class="muted">No findings on any image.</p></section>'

        def order(code: str) -> tuple[int, int, str]:
            sev = min(_SEVERITY_ORDER[f.severity.value] for f in groups[code])
            return (sev, -len(groups[code]), code)

        summary_rows = ""
        blocks = ""
        for code in sorted(groups, key=order):
            findings = groups[code]
            severity = min((f.severity for f in findings), key=lambda s: _SEVERITY_ORDER[s.value]).value
            summary_rows += (
                f'<tr><td><a href="#f-{escape(code)}"><code>{escape(code)}</code></a></td><td>{_badge(severity)}</td>'
                f"<td class=num>{len(findings)}</td><td>{escape(findings[0].message)}</td></tr>"
            )
            blocks += self.finding_group(code, severity, findings)
        table = (
            '<div class="card"><table><tr><th>code</th><th>severity</th><th class=num>images</th>'
            f"<th>example</th></tr>{summary_rows}</table></div>"
        )
        return (
            f'<section id="findings"><h2>Findings</h2>{table}<div class="groups">{blocks}</div>'
            f"{self.dataset_findings()}</section>"
        )

    def finding_group(self, code: str, severity: str, findings: list[Finding]) -> str:
        """One code: a header and a grid of cards (duplicates point to their own section)."""
        head = (
            f'<h3 id="f-{escape(code)}">{_badge(severity)}<code>{escape(code)}</code>'
            f'<span class="badge count">{len(findings)}</span></h3>'
        )
        if code in DUPLICATE_CODES:
            return (
                f'<div class="group card">{head}<div class="msg">Shown side by side under '
                '<a href="#duplicates">Duplicates</a>.</div></div>'
            )
        ordered = [f for f in findings if f.path]
        ordered.sort(key=lambda f: (_SEVERITY_ORDER[f.severity.value], f.path or ""))
        cards = [
            self.card(f.path or "", escape(f.message), f.evidence, title=f.message)
            for f in ordered[:CARDS_PER_CODE]
        ]
        grid = f'<div class="grid">{"".join(cards[:CARDS_OPEN])}</div>'
        if len(cards) > CARDS_OPEN:  # long groups fold, so one common finding does not bury the others
            grid += (
                f"<details><summary>Show {len(cards) - CARDS_OPEN} more</summary>"
                f'<div class="grid">{"".join(cards[CARDS_OPEN:])}</div></details>'
            )
        rest = ordered[CARDS_PER_CODE:]
        more = ""
        if rest:
            names = escape(", ".join(f.path or "" for f in rest))
            more = f'<details><summary>List the other {len(rest)}</summary><div class="more">{names}</div></details>'
        return (
            f'<div class="group card{" wide" if len(ordered) > 3 else ""}">{head}'
            f'<div class="msg">{escape(findings[0].message)}</div>{grid}{more}</div>'
        )

    def dataset_findings(self) -> str:
        """Findings about the whole dataset (no single image)."""
        items = [f for f in self.result.findings if not f.path or f.path not in self.by_rel]
        if not items:
            return ""
        items.sort(key=lambda f: (_SEVERITY_ORDER[f.severity.value], f.code))
        rows = "".join(
            f"<tr><td>{_badge(f.severity.value)}</td><td><code>{escape(f.code)}</code></td><td>{escape(f.message)}"
            f"{'<br><span class=mono>' + escape(f.path) + '</span>' if f.path else ''}</td>"
            f"<td class=muted>{_fmt(f.evidence, 160)}</td></tr>"
            for f in items
        )
        return (
            '<h3 style="margin-top:18px">Dataset-wide findings</h3><div class="card" style="margin-top:8px">'
            f"<table><tr><th>severity</th><th>code</th><th>message</th><th>evidence</th></tr>{rows}</table></div>"
        )

    def duplicates_section(self) -> str:
        """Each duplicate cluster as a row of thumbnails, the keeper first and marked."""
        clusters = self.curation.clusters
        if not clusters:
            return '<section id="duplicates"><h2>Duplicates</h2><p class="muted">No duplicates found.</p></section>'
        evidence: dict[str, Finding] = {}
        for f in self.result.all_findings():
            if f.code in DUPLICATE_CODES and f.path:
                evidence.setdefault(f.path, f)
        blocks = ""
        for cluster in clusters[:MAX_CLUSTERS]:
            members = _cluster_order(cluster)
            cards = ""
            for rel in members[:MAX_CLUSTER_CARDS]:
                if rel == cluster.keeper:
                    cards += self.card(rel, '<span class="badge keeper">keeper</span>', None, "keeper")
                else:
                    dup = evidence.get(rel)
                    why = f'<span class="badge {dup.severity.value}">{escape(dup.code)}</span>' if dup else ""
                    ev = {
                        k: v
                        for k, v in (dup.evidence if dup else {}).items()
                        if k not in ("keeper", "thresholds")
                    }
                    cards += self.card(rel, why, ev, "dropped")
            rest = members[MAX_CLUSTER_CARDS:]
            more = ""
            if rest:
                names = ", ".join(escape(rel) for rel in rest[:MAX_CLUSTER_NAMES])
                tail = f", and {len(rest) - MAX_CLUSTER_NAMES} more" if len(rest) > MAX_CLUSTER_NAMES else ""
                more = (
                    f'<p class="muted">{len(rest)} more in this cluster of {len(members)} (all are in '
                    f"<code>--json</code>): {names}{tail}</p>"
                )
            blocks += f'<div class="card"><div class="cluster">{cards}</div>{more}</div>'
        shown = (
            f" ({MAX_CLUSTERS} shown; all are in <code>--json</code>)" if len(clusters) > MAX_CLUSTERS else ""
        )
        note = (
            f'<p class="muted">{len(clusters)} cluster(s){shown}. An export keeps the keeper of each and leaves the '
            "others out; choose another keeper in <code>dreamcurate review</code>.</p>"
        )
        return f'<section id="duplicates"><h2>Duplicates</h2>{note}<div class="clusters">{blocks}</div></section>'

    def tags_section(self) -> str:
        """Tag frequency over the training captions (top 30), CLIP token lengths against the limit, keep_tokens."""
        train = [r for r in self.result.records if not r.item.is_reg and r.item.rel in self.curation.kept]
        audit = self.curation.audit
        freq: Counter[str] = Counter()
        if audit is not None:
            display: dict[str, str] = {}
            for concept in audit.concepts.values():
                freq.update(concept.frequency)
                display.update(concept.display)
            tag_lists = [r.normalized for r in audit.records if r.caption]
            top = [(display.get(t, t), n) for t, n in freq.most_common(30)]
        else:
            tag_lists = [tuple(_caption_tags(r)) for r in train]
            freq = Counter(tag for tags in tag_lists for tag in set(tags))
            top = freq.most_common(30)
        with_caption = sum(1 for r in train if r.item.caption_path is not None)
        once = sum(1 for n in freq.values() if n == 1)
        lengths = [len(t) for t in tag_lists if t]
        mean_tags = sum(lengths) / len(lengths) if lengths else 0
        facts = (
            f'<p class="muted">{with_caption} of {len(train)} training images have a caption; {len(freq)} distinct '
            f"tags, {once} used only once; {mean_tags:.1f} tags per caption on average.</p>"
        ) + self._caption_model()
        chart = bar_chart([(t, float(n)) for t, n in top], total=len(train) or None)
        extra = self._token_chart(audit) + self._keep_tokens(audit)
        extra_html = f'<div class="two" style="margin-top:14px">{extra}</div>' if extra else ""
        return f'<section id="tags"><h2>Captions and tags</h2>{facts}<div class="card">{chart}</div>{extra_html}</section>'

    def _caption_model(self) -> str:
        """Which local tagger or captioner last suggested captions (``dreamcurate caption``), if one did."""
        from curator.captions.store import last_run
        from curator.dataset.workspace import Workspace

        run = last_run(Workspace.for_dataset(self.result.dataset.root, self.result.settings.workspace))
        if run is None:
            return ""
        return (
            f'<p class="muted">Captions suggested by the {escape(str(run.get("kind", "model")))} '
            f"<code>{escape(str(run.get('name', '?')))}</code> ({escape(str(run.get('created', '')))}, "
            f"{escape(str(run.get('images', '?')))} images).</p>"
        )

    def _token_chart(self, audit: Any) -> str:
        tokens = [r.tokens for r in audit.records if r.caption and r.tokens >= 0] if audit is not None else []
        if not tokens:
            return ""
        limit = self.result.settings.max_token_length
        over = sum(t > limit for t in tokens)
        return (
            f'<div class="card"><h3>CLIP tokens per caption<span class="muted" style="font-weight:400">'
            f"{over} of {len(tokens)} over {limit}</span></h3>{histogram(tokens, float(limit), 'tokens')}</div>"
        )

    @staticmethod
    def _keep_tokens(audit: Any) -> str:
        if audit is None or not audit.concepts:
            return ""
        rows = "".join(
            f"<tr><td><b>{escape(c.name)}</b></td><td class=num>{c.keep_tokens.n}</td>"
            f"<td>{escape(', '.join(c.keep_tokens.prefix))}</td><td class=muted>{escape(c.keep_tokens.reason)}</td></tr>"
            for c in audit.concepts.values()
        )
        return (
            '<div class="card"><h3>keep_tokens advice</h3><table><tr><th>concept</th><th class=num>keep</th>'
            f"<th>kept tags</th><th>why</th></tr>{rows}</table></div>"
        )

    def buckets_section(self) -> str:
        """How the training images fall into Kohya buckets (from the plan when given, else computed here)."""
        rows: list[tuple[str, float]] = []
        plan_buckets = (self.plan or {}).get("buckets")
        if isinstance(plan_buckets, list) and all(isinstance(b, dict) for b in plan_buckets):
            key = "images" if all("images" in b for b in plan_buckets) else "count"
            rows = [
                (f"{b.get('width')}\u00d7{b.get('height')}", float(b.get(key) or 0)) for b in plan_buckets
            ]
            rows.sort(key=lambda row: -row[1])
            source = "from the training plan, images counted once"
        else:
            s = self.result.settings
            settings = BucketSettings.of(s)
            counts: Counter[tuple[int, int]] = Counter()
            for r in self.result.records:
                if r.decoded and not r.item.is_reg and r.width > 0 and r.height > 0:
                    counts[select_bucket(r.width, r.height, settings).bucket] += 1
            rows = [
                (f"{w}\u00d7{h}", float(n)) for (w, h), n in sorted(counts.items(), key=lambda kv: -kv[1])
            ]
            source = f"resolution {s.resolution}, buckets {s.min_bucket_reso}..{s.max_bucket_reso} step {s.bucket_reso_steps}"
        rows = [r for r in rows if r[1] > 0]
        total = sum(v for _, v in rows)
        chart = bar_chart(rows, total=total or None)
        return (
            f'<section id="buckets"><h2>Bucket distribution</h2><p class="muted">Images per aspect-ratio bucket '
            f'({escape(source)}).</p><div class="card">{chart}</div></section>'
        )

    def _thresholds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in self.result.all_findings():
            name, threshold = f.evidence.get("metric"), f.evidence.get("threshold")
            if (
                isinstance(name, str)
                and isinstance(threshold, (int, float))
                and not isinstance(threshold, bool)
            ):
                out.setdefault(name, float(threshold))
        return out

    def metrics_section(self) -> str:
        """A histogram per numeric metric that most images have, with the check's threshold when known."""
        decoded = [r for r in self.result.records if r.decoded]
        values: dict[str, list[float]] = {}
        for r in decoded:
            for name, v in r.metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    values.setdefault(name, []).append(float(v))
        wanted = [
            n
            for n in sorted(values)
            if len(values[n]) >= max(2, 0.3 * len(decoded)) and len(set(values[n])) > 1
        ]
        thresholds = self._thresholds()
        wanted.sort(key=lambda n: (n not in thresholds, n))
        charts = "".join(
            f'<div class="card"><h3><code>{escape(n)}</code><span class="muted" style="font-weight:400">'
            f"{len(values[n])} images</span></h3>{histogram(values[n], thresholds.get(n), n)}</div>"
            for n in wanted[:MAX_HISTOGRAMS]
        )
        if not charts:
            charts = '<p class="muted">No numeric metrics to chart.</p>'
        return f'<section id="metrics"><h2>Metrics</h2><div class="charts">{charts}</div></section>'

    def gallery_section(self) -> str:
        """Every image (up to a limit) with its worst severity, folded away by default."""
        records = self.result.records[:GALLERY_LIMIT]
        cards = ""
        for r in records:
            codes = sorted({f.code for f in r.findings})
            why = (
                (_badge(r.worst.value) + " " + escape(", ".join(codes)))
                if r.worst
                else '<span class="muted">clean</span>'
            )
            cards += self.card(r.item.rel, why)
        extra = len(self.result.records) - len(records)
        more = f'<div class="more">{extra} more images not shown.</div>' if extra > 0 else ""
        return (
            f'<section id="images"><h2>All images</h2><details><summary>Show {len(records)} images</summary>'
            f'<div class="grid">{cards}</div>{more}</details></section>'
        )

    def shown_rels(self) -> list[str]:
        """The images whose cards the report shows, flagged first, in the order the sections show them."""
        by_code: dict[str, list[Finding]] = {}
        for finding in (f for r in self.result.records for f in r.findings if f.path):
            if finding.code not in DUPLICATE_CODES:
                by_code.setdefault(finding.code, []).append(finding)
        rels = []
        for findings in by_code.values():
            findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity.value], f.path or ""))
            rels += [f.path or "" for f in findings[:CARDS_PER_CODE]]
        for cluster in self.curation.clusters[:MAX_CLUSTERS]:
            rels += _cluster_order(cluster)[:MAX_CLUSTER_CARDS]
        return rels + [r.item.rel for r in self.result.records[:GALLERY_LIMIT]]

    def prefetch(self) -> None:
        """Make every thumbnail the report shows, in threads (Pillow releases the GIL while decoding)."""
        wanted = list(dict.fromkeys(self.shown_rels()))
        todo = [self.by_rel[rel] for rel in wanted if rel in self.by_rel and self.by_rel[rel].decoded]
        todo = todo[:THUMB_BUDGET]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            uris = list(pool.map(lambda r: thumbnail_uri(r.item.path), todo))
        self._thumbs.update({r.item.rel: uri for r, uri in zip(todo, uris, strict=True)})

    def render(self) -> str:
        """The whole document."""
        result = self.result
        self.prefetch()
        body = (
            self.summary()
            + self.plan_section()
            + self.findings_section()
            + self.duplicates_section()
            + self.tags_section()
            + self.buckets_section()
            + self.metrics_section()
            + self.gallery_section()
        )
        nav = [("summary", "Summary")]
        if self.plan:
            nav.append(("plan", "Plan"))
        nav += [
            ("findings", "Findings"),
            ("duplicates", "Duplicates"),
            ("tags", "Tags"),
            ("buckets", "Buckets"),
            ("metrics", "Metrics"),
            ("images", "All images"),
        ]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        subtitle = f"{result.dataset.root} \u00b7 {len(result.records)} images \u00b7 scanned {when}"
        return page(f"dreamcurate report: {result.dataset.root.name}", subtitle, nav, body)


def _cluster_order(cluster: Any) -> list[str]:
    """A duplicate cluster's members as the report shows them: the keeper first, then the others in their order."""
    return [cluster.keeper] + [m for m in cluster.members if m != cluster.keeper]
