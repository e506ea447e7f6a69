"""The terminal view of ``dreamcurate tags``: tag tables per concept, keep_tokens advice, token lengths, findings.

Example::

    print_audit(audit_captions(load_captions(items)), Console())
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from curator.captions.audit import CaptionAudit, ConceptAudit
from curator.findings import Severity
from curator.textsafe import markup

_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _tag_table(concept: ConceptAudit, top: int) -> Table:
    title = f"{markup(concept.name)}: {concept.captions} captions, {len(concept.frequency)} distinct tags"
    table = Table(title=title, title_justify="left")
    table.add_column("tag")
    table.add_column("captions", justify="right")
    table.add_column("share", justify="right")
    for tag, count in concept.frequency.most_common(top):
        share = count / max(1, concept.captions)
        table.add_row(markup(concept.display.get(tag, tag)), str(count), f"{share:.0%}")
    return table


def _keep_tokens_table(concept: ConceptAudit) -> Table:
    advice = concept.keep_tokens
    table = Table(
        title=f"keep_tokens for {markup(concept.name)}: advise {advice.n} ({markup(advice.reason)})",
        title_justify="left",
    )
    table.add_column("N", justify="right")
    table.add_column("most common first N tags")
    table.add_column("share", justify="right")
    for row in advice.distribution:
        mark = " <" if row["n"] == advice.n else ""
        table.add_row(str(row["n"]), markup(", ".join(row["prefix"])), f"{row['share']:.0%}{mark}")
    return table


def _token_line(concept: ConceptAudit, limit: int) -> str:
    lengths = sorted(n for n in concept.token_lengths if n >= 0)
    if not lengths:
        return f"{markup(concept.name)}: no token counts"
    over = sum(1 for n in lengths if n > limit)
    return (
        f"{markup(concept.name)}: CLIP tokens min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}; "
        f"{over} caption(s) over {limit}"
    )


def _findings_table(audit: CaptionAudit) -> Table:
    counts = Counter((f.code, f.severity) for f in audit.findings)
    table = Table(title="Caption findings", title_justify="left")
    table.add_column("code")
    table.add_column("severity")
    table.add_column("count", justify="right")
    table.add_column("example")
    for (code, severity), count in sorted(counts.items(), key=lambda kv: (-kv[0][1].rank, kv[0][0])):
        example = next(f for f in audit.findings if f.code == code and f.severity is severity)
        where = f"{example.path}: " if example.path else ""
        table.add_row(
            code, f"[{_STYLE[severity]}]{severity.value}[/]", str(count), markup(where + example.message)
        )
    return table


def print_audit(audit: CaptionAudit, console: Console, top: int = 20) -> None:
    """Print the audit: per concept the tag table, the keep_tokens advice and token lengths; then the findings."""
    limit = audit.settings.max_token_length
    for concept in audit.concepts.values():
        if concept.is_reg:
            continue
        console.print(_tag_table(concept, top))
        if concept.keep_tokens.uses_separator:
            console.print(
                f"{concept.keep_tokens.uses_separator} caption(s) mark their kept prefix with '|||': "
                "keep_tokens is ignored for them"
            )
        console.print(_keep_tokens_table(concept))
        console.print(_token_line(concept, limit))
    if audit.findings:
        console.print(_findings_table(audit))
    else:
        console.print("[green]No caption findings.[/]")
