"""The preview of one item, evidence first: the image, the findings (severity, message, the metric against its
threshold, the other file of a duplicate), the caption with its live CLIP token count, the keep_tokens mark and the
tags training will not read struck out, then the metrics, folded, in groups (quality / hashes / file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from PIL import Image as PILImage
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Collapsible, Static
from textual.worker import get_current_worker

from curator.findings import Finding, Severity
from curator.scan.results import ItemRecord
from curator.textsafe import safe
from tui.backend import CaptionView
from tui.state import SEVERITY_MARKS, format_metric
from tui.widgets.preview.image import load_thumbnail, make_image_widget, set_image
from tui.widgets.preview.suggestions import SuggestedTags

_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
#: Metrics about the file rather than the picture.
FILE_METRICS = (
    "file_size",
    "format",
    "mode",
    "frames",
    "has_alpha",
    "draft_scale",
    "screen_size",
    "block_offset",
)
#: Evidence keys that name a limit; the others are measurements.
LIMIT_KEYS = ("threshold", "thresholds", "limit", "resolution", "tiny_px")
#: Evidence keys shown as a file of the dataset (duplicates).
FILE_KEYS = ("keeper", "match", "other", "duplicate_of")


def caption_text(view: CaptionView) -> Text:
    """The caption as rich text: kept tags bold, a ``|`` after the keep_tokens boundary, lost tags struck in red."""
    text = Text()
    for index, tag in enumerate(view.tags):
        if index:
            text.append(", ")
        if index == view.keep_tokens and view.keep_tokens:
            text.append("| ", style="bold magenta")
        if view.lost_from is not None and index >= view.lost_from:
            style = "strike red"
        elif index < view.keep_tokens:
            style = "bold"
        else:
            style = ""
        text.append(safe(tag), style=style)
    return text


def token_line(view: CaptionView, edited: bool = False) -> Text:
    """``N / 75 CLIP tokens, keep_tokens K`` coloured red when over the limit (``edited``: marks a review edit)."""
    over = view.tokens > view.limit
    line = Text(f"{view.tokens} / {view.limit} CLIP tokens", style="bold red" if over else "green")
    line.append(f" · {len(view.tags)} tags · keep_tokens {view.keep_tokens}")
    if view.lost_from is not None:
        line.append(f" · {len(view.tags) - view.lost_from} past the limit", style="red")
    if edited:
        line.append(" · ✎ edited in review", style="cyan")
    return line


def evidence_line(finding: Finding) -> Text:
    """The evidence of one finding in words: measurements against limits, and the other file of a duplicate."""
    evidence = finding.evidence
    line = Text()
    for key in FILE_KEYS:
        if isinstance(evidence.get(key), str) and "/" in str(evidence[key]):
            line.append(f"{key} ", style="dim")
            line.append(PurePosixPath(str(evidence[key])).name + "  ", style="bold")
    if isinstance(evidence.get("copy"), str):
        line.append("this copy: ", style="dim")
        line.append(str(evidence["copy"]) + "  ")
    measured = {
        k: v
        for k, v in evidence.items()
        if k not in LIMIT_KEYS + FILE_KEYS + ("copy", "keeper_why", "metric")
    }
    limits = {k: v for k, v in evidence.items() if k in LIMIT_KEYS}
    for key, value in measured.items():
        if value is True:
            line.append(f"{key}  ")
        elif _scalar(value) and value is not False:
            line.append(f"{key} {format_metric(value)}  ")
    for key, value in limits.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {format_metric(v)}" for k, v in value.items())
        line.append(f"vs {key} {format_metric(value) if _scalar(value) else value}  ", style="dim")
    return line


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool)


def findings_text(record: ItemRecord) -> Text:
    """Every finding of ``record``: mark, severity, code and message, then its evidence on the next line."""
    text = Text()
    for finding in record.findings:
        style = _SEVERITY_STYLE.get(finding.severity, "")
        text.append(f"{SEVERITY_MARKS.get(finding.severity, ' ')} {finding.code}", style=style)
        text.append(f" ({finding.severity.value}) ", style="dim")
        text.append(finding.message + "\n")
        evidence = evidence_line(finding)
        if evidence:
            text.append("   ")
            text.append(evidence)
            text.append("\n")
    if not record.findings:
        text.append("no findings\n", style="green")
    text.rstrip()
    return text


def head_text(record: ItemRecord) -> Text:
    """The file name, its size in pixels and its concept."""
    head = Text(PurePosixPath(record.item.rel).name, style="bold")
    head.append(
        f"  {record.width}x{record.height} · {record.item.concept} x{record.item.repeats}", style="dim"
    )
    return head


def metric_group(key: str) -> str:
    """Which fold a metric belongs to: ``hashes``, ``file`` or ``quality``."""
    if "hash" in key or "sha" in key:
        return "hashes"
    if key in FILE_METRICS:
        return "file"
    return "quality"


def metrics_table(record: ItemRecord) -> Group:
    """The metrics in their groups, quality first, names sorted within a group."""
    parts: list[Any] = []
    for group in ("quality", "file", "hashes"):
        keys = sorted(k for k in record.metrics if metric_group(k) == group)
        if not keys:
            continue
        table = Table.grid(padding=(0, 1))
        for key in keys:
            table.add_row(
                Text(key, style="dim"), Text(format_metric(record.metrics[key]), overflow="ellipsis")
            )
        parts += [Text(group, style="bold underline"), table]
    return Group(*parts)


class PreviewPanel(VerticalScroll):
    """Shows one item; :meth:`show` is called by the app when the browser's cursor moves."""

    @dataclass
    class ThumbnailLoaded(Message):
        """The worker decoded the thumbnail of ``rel`` (None when the file cannot be decoded)."""

        rel: str
        image: PILImage.Image | None

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rel: str | None = None

    def compose(self) -> ComposeResult:
        yield make_image_widget(id="preview-image")
        yield Static(id="preview-head")
        yield Static(id="preview-findings")
        yield Static(id="preview-tokens")
        yield Static(id="preview-caption")
        yield SuggestedTags(id="preview-suggestions")
        with Collapsible(title="metrics", collapsed=True, id="preview-metrics"):
            yield Static(id="preview-metric-table")

    def show(self, record: ItemRecord | None, caption: CaptionView | None, edited: bool = False) -> None:
        """Show ``record`` with ``caption`` (the image loads in a worker, so the cursor never waits for it)."""
        self.rel = record.item.rel if record else None
        self.query_one("#preview-head", Static).update(head_text(record) if record else "")
        self.query_one("#preview-findings", Static).update(findings_text(record) if record else "")
        self.query_one("#preview-tokens", Static).update(token_line(caption, edited) if caption else "")
        caption_body = (
            caption_text(caption) if caption and caption.tags else Text("(no caption)", style="dim")
        )
        self.query_one("#preview-caption", Static).update(caption_body if record else "")
        self.query_one(SuggestedTags).show(record, caption.text if caption else "")
        self.query_one("#preview-metric-table", Static).update(metrics_table(record) if record else "")
        set_image(self.query_one("#preview-image"), None)
        if record is not None and record.decoded:
            self.load_image(record)

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview")
    def load_image(self, record: ItemRecord) -> None:
        """Decode a thumbnail off the UI thread; drop it when the cursor has moved on."""
        thumb = load_thumbnail(record.item.path)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.ThumbnailLoaded(record.item.rel, thumb))

    def on_preview_panel_thumbnail_loaded(self, message: ThumbnailLoaded) -> None:
        if message.rel == self.rel:
            set_image(self.query_one("#preview-image"), message.image)
