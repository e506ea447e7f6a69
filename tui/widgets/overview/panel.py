"""The overview: concepts and image counts, size advice, finding counts and the plan's headline numbers."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from curator.findings import Severity
from curator.scan.results import ScanResult
from curator.textsafe import text as safe_text
from tui.backend import PlanSummary


def concepts_table(result: ScanResult, decisions: dict[str, str], plan: PlanSummary | None = None) -> Table:
    """One row per concept: repeats, images, dropped in review, and the images training gets (the plan's count of
    the one curation: review drops, errors and duplicates left out; '?' until the plan is known)."""
    table = Table(title="Concepts", title_justify="left", expand=False)
    for column in ("concept", "repeats", "images", "dropped in review", "training"):
        table.add_column(column, justify="left" if column == "concept" else "right")
    planned = {(c["name"], c["is_reg"]): c for c in (plan.values.get("concepts", []) if plan else [])}
    for concept in result.dataset.concepts:
        rels = [item.rel for item in concept.items]
        dropped = sum(1 for rel in rels if decisions.get(rel) == "drop")
        name = concept.name + (" (reg)" if concept.is_reg else "")
        row = planned.get((concept.name, concept.is_reg))
        training = str(row["images"]) if row else "?"
        repeats = str(row["repeats"]) if row else str(concept.repeats)
        table.add_row(safe_text(name), repeats, str(len(rels)), str(dropped), training)
    return table


def findings_table(result: ScanResult) -> Table:
    """Finding counts per code with the worst severity seen for that code."""
    table = Table(title="Findings", title_justify="left", expand=False)
    table.add_column("code")
    table.add_column("severity")
    table.add_column("count", justify="right")
    worst: dict[str, Severity] = {}
    for finding in result.all_findings():
        if finding.code not in worst or finding.severity.rank > worst[finding.code].rank:
            worst[finding.code] = finding.severity
    for code, count in sorted(result.counts().items(), key=lambda kv: (-worst[kv[0]].rank, kv[0])):
        table.add_row(code, worst[code].value, str(count))
    if not worst:
        table.add_row("none", "", "0")
    return table


def dataset_findings(result: ScanResult) -> Text:
    """Dataset-wide findings (size advice, caption extension mismatch...) as one line each."""
    text = Text()
    for finding in result.findings + result.dataset.findings:
        text.append(f"{finding.severity.value}: ", style="bold")
        text.append(finding.message + "\n")
    return text


def plan_table(plan: PlanSummary | None) -> RenderableType:
    """The plan's headline numbers (or a note while they are not known)."""
    if plan is None:
        return Text("Plan: not computed yet", style="dim")
    table = Table.grid(padding=(0, 2))
    for label, value in plan.lines:
        table.add_row(Text(label, style="dim"), value)
    notes = Text("\n".join(plan.notes), style="italic")
    return Group(Text("Plan (change it on the Plan tab)", style="bold"), table, notes)


class OverviewPanel(VerticalScroll):
    """The first thing a user sees after the scan."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("Scanning…", id="overview-body")

    def show(self, result: ScanResult, decisions: dict[str, str], plan: PlanSummary | None) -> None:
        """Render the overview of ``result``."""
        head = Text(
            result.dataset.root.name, style="bold"
        )  # the name only: snapshots must not depend on tmp paths
        head.append(f"  {len(result.records)} images, layout {result.dataset.layout}, captions ")
        head.append(result.dataset.caption_extension)
        body = Group(
            head,
            concepts_table(result, decisions, plan),
            findings_table(result),
            dataset_findings(result),
            plan_table(plan),
        )
        self.query_one("#overview-body", Static).update(body)
