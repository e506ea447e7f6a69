"""Duplicate clusters side by side: every member reachable (h / l scroll the cards), each card showing what tells
copies apart (pixels, file size and format, JPEG quality, sharpness, the processing marks of the keeper rule,
brightness against the cluster), and why the keeper won. K makes the selected image the keeper."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from curator.checks.keeper import Traits, describe, keeper_reason, traits
from curator.review.selection import Cluster
from curator.scan.results import ItemRecord, ScanResult
from curator.textsafe import safe
from curator.textsafe import text as safe_text
from tui.state import duplicate_note, format_metric
from tui.widgets.preview.image import load_thumbnail, make_image_widget, set_image
from tui.widgets.table import NavTable

#: Card widgets made once; as many as the width allows are shown, and the window follows the selection.
CARD_POOL = 6
#: Cells one card needs to be readable.
CARD_WIDTH = 24


def window(selected: int, count: int, per_page: int) -> range:
    """The members shown: ``per_page`` of ``count`` with ``selected`` inside (pages turn as the selection moves)."""
    per_page = max(1, min(per_page, count))
    start = (selected // per_page) * per_page
    start = min(start, max(count - per_page, 0))
    return range(start, min(start + per_page, count))


def card_text(record: ItemRecord, t: Traits, keeper: bool, chosen: bool) -> Text:
    """The facts that tell one copy from another, for one card."""
    m = record.metrics
    text = Text(safe(PurePosixPath(record.item.rel).name) + "\n", style="bold")
    text.append(f"{record.width}x{record.height}")
    if isinstance(m.get("file_size"), int | float):
        text.append(f" · {_size(float(m['file_size']))}")
    if m.get("format"):
        text.append(f" · {m['format']}")
    if t.quality is not None:
        text.append(f" q{t.quality:.0f}")
    text.append("\n")
    sharp = m.get("laplacian_var", m.get("edge_sharpness"))
    if isinstance(sharp, int | float):
        text.append(f"sharpness {format_metric(float(sharp))}")
    if t.brightness is not None:
        text.append(f" · luma {t.brightness:.2f}x")
    text.append("\n")
    text.append(describe(t) + "\n", style="yellow" if t.marks else "green")
    note = duplicate_note(record)
    if note:
        text.append(note + "\n", style="dim")
    if keeper:
        text.append("KEEP" + (" (your choice)" if chosen else " (automatic)"), style="bold green")
    else:
        text.append("drop", style="red")
    return text


def _size(size: float) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"


class DuplicatesPanel(Horizontal):
    """Cluster list on the left, the current cluster's images on the right."""

    BINDINGS = [
        Binding("h,left", "move(-1)", "Prev image"),
        Binding("l,right", "move(1)", "Next image"),
        Binding("K", "choose_keeper", "Make keeper"),
    ]

    @dataclass
    class ChooseKeeper(Message):
        """Keep ``keeper`` and drop the other ``members`` of its cluster."""

        keeper: str
        members: list[str]

    @dataclass
    class ThumbnailsLoaded(Message):
        """The worker decoded the thumbnails of the cards shown (None for files it could not decode)."""

        cluster: int
        rels: list[str]
        images: list[object]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clusters: list[Cluster] = []
        self.chosen: set[str] = set()  # cluster keys whose keeper the user chose
        self.cluster_index = 0
        self.selected = 0
        self.per_page = 4
        self.result: ScanResult | None = None

    def compose(self) -> ComposeResult:
        yield NavTable(id="dup-clusters")
        with Vertical(id="dup-right"):
            yield Static("No duplicates found.", id="dup-title")
            yield Static("", id="dup-why")
            with Horizontal(id="dup-cards"):
                for index in range(CARD_POOL):
                    with Vertical(classes="dup-card", id=f"dup-card-{index}"):
                        yield make_image_widget(classes="dup-image")
                        yield Static(classes="dup-label")

    def on_mount(self) -> None:
        table = self.query_one("#dup-clusters", DataTable)
        table.add_column("keeper", key="keeper")
        table.add_column("n", key="n")

    def on_resize(self, event: events.Resize) -> None:
        per_page = max(1, min(CARD_POOL, (event.size.width - 32) // CARD_WIDTH))
        if per_page != self.per_page:
            self.per_page = per_page
            self._render_cards()
            if self.clusters:
                self.load_thumbnails(self.cluster_index)

    def load(self, result: ScanResult, clusters: list[Cluster], chosen: set[str] | None = None) -> None:
        """Show ``clusters`` (from ``curator.review.selection``, keepers as export will use them), keeping the place;
        ``chosen``: keys of the clusters whose keeper was picked in review."""
        self.result = result
        self.clusters = clusters
        self.chosen = set(chosen or ())
        table = self.query_one("#dup-clusters", DataTable)
        table.clear()
        for index, cluster in enumerate(self.clusters):
            table.add_row(
                safe_text(PurePosixPath(cluster.keeper).name), str(len(cluster.members)), key=str(index)
            )
        index = min(self.cluster_index, max(len(clusters) - 1, 0))
        if clusters:
            table.move_cursor(row=index, animate=False)
        self.show_cluster(index, keep_selection=True)

    def show_cluster(self, index: int, keep_selection: bool = False) -> None:
        """Show cluster ``index`` in the cards."""
        if not (keep_selection and index == self.cluster_index):
            self.selected = 0
        self.cluster_index = index
        self._render_cards()
        if self.clusters:
            self.load_thumbnails(index)

    def shown(self) -> list[str]:
        """The members whose cards are on screen now."""
        if not self.clusters:
            return []
        members = self.clusters[self.cluster_index].members
        return [members[i] for i in window(self.selected, len(members), self.per_page)]

    def _render_cards(self) -> None:
        cards = list(self.query(".dup-card"))
        if not self.clusters or self.result is None:
            for card in cards:
                card.display = False
            return
        cluster = self.clusters[self.cluster_index]
        records = [self.result.record(rel) for rel in cluster.members]
        marks = traits(records)
        chosen = cluster.key in self.chosen
        shown = window(self.selected, len(cluster.members), self.per_page)
        title = f"Cluster {self.cluster_index + 1} of {len(self.clusters)}: {len(cluster.members)} images"
        if len(shown) < len(cluster.members):
            title += f", showing {shown.start + 1}-{shown.stop} (h / l for more)"
        self.query_one("#dup-title", Static).update(title)
        why = (
            "kept by your choice (K)"
            if chosen
            else "automatic keeper: " + keeper_reason(records, others=False)
        )
        self.query_one("#dup-why", Static).update(Text(why, style="dim"))
        for slot, card in enumerate(cards):
            card.display = slot < len(shown)
            if not card.display:
                continue
            index = shown[slot]
            rel = cluster.members[index]
            card.set_class(index == self.selected, "-selected")
            label = card_text(records[index], marks[rel], rel == cluster.keeper, chosen)
            card.query_one(".dup-label", Static).update(label)

    @work(thread=True, exclusive=True, exit_on_error=False, group="duplicates")
    def load_thumbnails(self, index: int) -> None:
        """Decode the thumbnails of the cards shown, off the UI thread."""
        if self.result is None:
            return
        rels = self.shown()
        images: list[object] = []
        for rel in rels:
            if get_current_worker().is_cancelled:
                return
            images.append(load_thumbnail(self.result.record(rel).item.path))
        self.post_message(self.ThumbnailsLoaded(index, rels, images))

    def on_duplicates_panel_thumbnails_loaded(self, message: ThumbnailsLoaded) -> None:
        if message.cluster != self.cluster_index or message.rels != self.shown():
            return
        for card, image in zip(self.query(".dup-card"), message.images, strict=False):
            set_image(card.query_one(".dup-image"), image)  # type: ignore[arg-type]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            index = int(event.row_key.value)
            if index != self.cluster_index or not self.query_one("#dup-cards").children:
                self.show_cluster(index)

    def action_move(self, delta: int) -> None:
        """Select the previous / next image of the cluster (every member, the cards page along)."""
        if not self.clusters:
            return
        before = self.shown()
        self.selected = (self.selected + delta) % len(self.clusters[self.cluster_index].members)
        self._render_cards()
        if self.shown() != before:
            self.load_thumbnails(self.cluster_index)

    def action_choose_keeper(self) -> None:
        """Keep the selected image of the cluster and drop the others."""
        if not self.clusters:
            return
        cluster = self.clusters[self.cluster_index]
        keeper = cluster.members[self.selected]
        self.post_message(self.ChooseKeeper(keeper, list(cluster.members)))
