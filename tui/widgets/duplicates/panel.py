"""Near-duplicate clusters side by side: pick the image to keep; the others are dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from curator.review.selection import Cluster
from curator.scan.results import ScanResult
from tui.widgets.table import NavTable
from tui.state import duplicate_note
from tui.widgets.preview.image import load_thumbnail, make_image_widget, set_image

#: Cards shown side by side (bigger clusters: the first ones, the rest are listed by name).
MAX_CARDS = 4


class DuplicatesPanel(Horizontal):
    """Cluster list on the left, the current cluster's images on the right."""

    BINDINGS = [
        Binding("h", "move(-1)", "Prev image"),
        Binding("l", "move(1)", "Next image"),
        Binding("K", "choose_keeper", "Make keeper"),
    ]

    @dataclass
    class ChooseKeeper(Message):
        """Keep ``keeper`` and drop the other ``members`` of its cluster."""

        keeper: str
        members: list[str]

    @dataclass
    class ThumbnailsLoaded(Message):
        """The worker decoded the thumbnails of a cluster (None for files it could not decode)."""

        cluster: int
        images: list[object]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clusters: list[Cluster] = []
        self.cluster_index = 0
        self.selected = 0
        self.result: ScanResult | None = None

    def compose(self) -> ComposeResult:
        yield NavTable(id="dup-clusters")
        with Vertical(id="dup-right"):
            yield Static("No near-duplicates found.", id="dup-title")
            with Horizontal(id="dup-cards"):
                for index in range(MAX_CARDS):
                    with Vertical(classes="dup-card", id=f"dup-card-{index}"):
                        yield make_image_widget(classes="dup-image")
                        yield Static(classes="dup-label")

    def on_mount(self) -> None:
        table = self.query_one("#dup-clusters", DataTable)
        table.add_column("keeper", key="keeper")
        table.add_column("n", key="n")

    def load(self, result: ScanResult, clusters: list[Cluster]) -> None:
        """Show ``clusters`` (from ``curator.review.selection``, keepers as export will use them), keeping the place."""
        self.result = result
        self.clusters = clusters
        table = self.query_one("#dup-clusters", DataTable)
        table.clear()
        for index, cluster in enumerate(self.clusters):
            table.add_row(PurePosixPath(cluster.keeper).name, str(len(cluster.members)), key=str(index))
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

    def _render_cards(self) -> None:
        cards = list(self.query(".dup-card"))
        if not self.clusters:
            for card in cards:
                card.display = False
            return
        cluster = self.clusters[self.cluster_index]
        keeper = cluster.keeper
        title = f"Cluster {self.cluster_index + 1} of {len(self.clusters)}: {len(cluster.members)} images"
        if len(cluster.members) > MAX_CARDS:
            title += f" (showing {MAX_CARDS})"
        self.query_one("#dup-title", Static).update(title)
        for index, card in enumerate(cards):
            card.display = index < len(cluster.members)
            if not card.display:
                continue
            rel = cluster.members[index]
            card.set_class(index == self.selected, "-selected")
            card.query_one(".dup-label", Static).update(self._label(rel, keeper))

    def _label(self, rel: str, keeper: str) -> Text:
        text = Text(PurePosixPath(rel).name + "\n", style="bold")
        record = self.result.record(rel) if self.result else None
        if record is not None:
            text.append(f"{record.width}x{record.height}\n")
            note = duplicate_note(record)
            if note:
                text.append(note + "\n", style="dim")
        text.append("KEEP" if rel == keeper else "drop", style="bold green" if rel == keeper else "red")
        return text

    @work(thread=True, exclusive=True, exit_on_error=False, group="duplicates")
    def load_thumbnails(self, index: int) -> None:
        """Decode the cluster's thumbnails off the UI thread."""
        if self.result is None:
            return
        images: list[object] = []
        for rel in self.clusters[index].members[:MAX_CARDS]:
            if get_current_worker().is_cancelled:
                return
            images.append(load_thumbnail(self.result.record(rel).item.path))
        self.post_message(self.ThumbnailsLoaded(index, images))

    def on_duplicates_panel_thumbnails_loaded(self, message: ThumbnailsLoaded) -> None:
        if message.cluster != self.cluster_index:
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
        """Select the previous / next image of the cluster."""
        if not self.clusters:
            return
        count = min(len(self.clusters[self.cluster_index].members), MAX_CARDS)
        self.selected = (self.selected + delta) % count
        self._render_cards()

    def action_choose_keeper(self) -> None:
        """Keep the selected image of the cluster and drop the others."""
        if not self.clusters:
            return
        cluster = self.clusters[self.cluster_index]
        keeper = cluster.members[self.selected]
        self.post_message(self.ChooseKeeper(keeper, list(cluster.members)))
