"""The preview of one item: the image, its metrics and findings with their evidence, and its caption with the CLIP
token count and the keep_tokens boundary marked."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image as PILImage
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from curator.scan.results import ItemRecord
from curator.textsafe import safe
from tui.backend import CaptionView
from tui.state import format_metric
from tui.widgets.preview.image import load_thumbnail, make_image_widget, set_image
from tui.widgets.preview.suggestions import SuggestedTags


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


def token_line(view: CaptionView) -> Text:
    """``N / 75 CLIP tokens, keep_tokens K`` coloured red when over the limit."""
    over = view.tokens > view.limit
    line = Text(f"{view.tokens} / {view.limit} CLIP tokens", style="bold red" if over else "green")
    line.append(f"  ·  {len(view.tags)} tags  ·  keep_tokens {view.keep_tokens}")
    if view.lost_from is not None:
        line.append(f"  ·  {len(view.tags) - view.lost_from} tags past the limit", style="red")
    return line


def details(record: ItemRecord) -> Group:
    """Size, metrics and findings (with evidence) of ``record``."""
    head = Text(safe(record.item.rel), style="bold")
    head.append(
        f"  {record.width}x{record.height}  concept {safe(record.item.concept)} x{record.item.repeats}"
    )
    metrics = Table.grid(padding=(0, 1))
    for key in sorted(record.metrics):
        metrics.add_row(Text(key, style="dim"), format_metric(record.metrics[key]))
    findings = Text()
    for finding in record.findings:
        findings.append(f"{finding.severity.value:7} {finding.code}: ", style="bold")
        findings.append(finding.message + "\n")
        if finding.evidence:
            evidence = ", ".join(f"{k}={format_metric(v)}" for k, v in sorted(finding.evidence.items()))
            findings.append(f"        {evidence}\n", style="dim")
    if not record.findings:
        findings.append("no findings", style="green")
    return Group(head, metrics, findings)


class PreviewPanel(VerticalScroll):
    """Shows one item; :meth:`show` is called by the browser when the cursor moves."""

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
        yield Static(id="preview-details")
        yield Static(id="preview-tokens")
        yield Static(id="preview-caption")
        yield SuggestedTags(id="preview-suggestions")

    def show(self, record: ItemRecord | None, caption: CaptionView | None) -> None:
        """Show ``record`` with ``caption`` (the image loads in a worker, so the cursor never waits for it)."""
        self.rel = record.item.rel if record else None
        self.query_one("#preview-details", Static).update(details(record) if record else "")
        self.query_one("#preview-tokens", Static).update(token_line(caption) if caption else "")
        caption_body = (
            caption_text(caption) if caption and caption.tags else Text("(no caption)", style="dim")
        )
        self.query_one("#preview-caption", Static).update(caption_body if record else "")
        self.query_one(SuggestedTags).show(record, caption.text if caption else "")
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
