"""The review app: it composes the panels and routes messages between them and the :class:`~tui.backend.Backend`.

Example::

    app = create_app(Path("train"), ScanSettings())
    app.run()

Tests drive it with ``async with create_app(...).run_test() as pilot: await pilot.press("2", "d")``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import (
    Footer,
    Header,
    Input,
    OptionList,
    ProgressBar,
    Select,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.worker import Worker, WorkerState, get_current_worker

from curator.review.curation import Policy
from curator.scan.results import ScanResult, ScanSettings
from curator.settings.config import TrainConfig
from curator.textsafe import safe
from tui.backend import Backend, BackendError, JobCancelled, PlanSummary, StepResult
from tui.jobs import EventTail, last_line
from tui.messages import (
    DecisionsChanged,
    ExportFinished,
    JobFailed,
    ScanFinished,
    ScanProgress,
    TagCounts,
    TrainEvents,
    TrainExited,
)
from tui.prefs import load_prefs, save_prefs
from tui.screens.caption_editor import CaptionEditor
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.widgets.browser.item_table import ItemTable
from tui.widgets.browser.panel import BrowserPanel
from tui.widgets.duplicates.panel import DuplicatesPanel
from tui.widgets.overview.panel import OverviewPanel
from tui.widgets.plan.panel import PlanPanel, follow_resolution
from tui.widgets.preview.image import load_thumbnail
from tui.widgets.preview.panel import PreviewPanel
from tui.widgets.preview.suggestions import SuggestedTags
from tui.widgets.tags.panel import TagsPanel
from tui.widgets.train.panel import TrainPanel

T = TypeVar("T")


class Failed:
    """The type of :data:`FAILED`, what :meth:`ReviewApp.guard` returns after reporting a failure."""


FAILED = Failed()
TABS = ("overview", "browser", "duplicates", "tags", "plan", "train")
#: The widget each tab focuses when shown: a form tab its first field, so what is typed next lands there.
TAB_FOCUS = {
    "overview": "#overview-panel",
    "browser": "#items",
    "duplicates": "#dup-clusters",
    "tags": "#tag-freq",
    "plan": "#plan-max_train_epochs",
    "train": "#train-out",
}
#: Where Escape goes from a field: the tab's table, or the tab bar on form tabs (then digits switch tabs again).
TAB_HOME = {**TAB_FOCUS, "plan": "#tabs ContentTabs", "train": "#tabs ContentTabs"}
#: Tabs on which the single-letter keys that change decisions or rescan (u, U, r) work: never on a form tab.
DECISION_TABS = ("overview", "browser", "duplicates")
#: App actions a focused text field or dropdown must never trigger (its keys are the user's typing).
GUARDED_ACTIONS = ("tab", "undo", "redo", "rescan", "quit", "help")
#: Seconds between two reads of the trainer's event file.
TAIL_INTERVAL = 0.25


@dataclass
class ReviewState:
    """What the app knows: the scan, the decisions as the store holds them, the plan, and a log of what happened."""

    result: ScanResult | None = None
    decisions: dict[str, str] = field(default_factory=dict)
    settings: TrainConfig = field(default_factory=TrainConfig)  # the plan tab's training settings
    plan: PlanSummary | None = None
    scanning: bool = False
    log: list[str] = field(default_factory=list)  # one line per user-visible event (tests read it)


class ReviewApp(App[None]):
    """``dreamcurate review``: overview, browser with preview, duplicates, tags, plan, export and train."""

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the footer stays readable
    TITLE = "dreamcurate review"
    BINDINGS = [
        Binding("1", "tab('overview')", "Overview", show=False),
        Binding("2", "tab('browser')", "Browser", show=False),
        Binding("3", "tab('duplicates')", "Dups", show=False),
        Binding("4", "tab('tags')", "Tags", show=False),
        Binding("5", "tab('plan')", "Plan", show=False),
        Binding("6", "tab('train')", "Train", show=False),
        Binding("u", "undo", "Undo"),
        Binding("U,ctrl+y", "redo", "Redo", show=False),
        Binding("escape", "leave_input", "Leave field", show=False),
        Binding("r", "rescan", "Rescan", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, backend: Backend, settings: TrainConfig | None = None, export_dir: Path | None = None):
        super().__init__()
        self.backend = backend
        self.prefs = load_prefs(backend.workspace)  # what the last session on this dataset left on the forms
        self.state = ReviewState(
            settings=follow_resolution(settings or self.prefs.plan or backend.training_settings())
        )
        default_out = backend.dataset_root.parent / f"{backend.dataset_root.name}-curated"
        self.export_dir = export_dir or (
            Path(self.prefs.export_dir) if self.prefs.export_dir else default_out
        )
        self.sub_title = backend.dataset_root.name
        self._process: subprocess.Popen[bytes] | None = None
        self._train_log: Path | None = None  # the trainer's stdout and stderr
        self.export_config: Path | None = None  # the trainer config the last export wrote

    # -- composition ----------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield ProgressBar(id="scan-progress", show_eta=False)
        with TabbedContent(initial="browser", id="tabs"):
            with TabPane("1 Overview", id="overview"):
                yield OverviewPanel(id="overview-panel")
            with TabPane("2 Browser", id="browser"):
                yield BrowserPanel(id="browser-panel")
            with TabPane("3 Duplicates", id="duplicates"):
                yield DuplicatesPanel(id="duplicates-panel")
            with TabPane("4 Tags", id="tags"):
                yield TagsPanel(id="tags-panel")
            with TabPane("5 Plan", id="plan"):
                yield PlanPanel(self.state.settings, id="plan-panel")
            with TabPane("6 Train", id="train"):
                yield TrainPanel(self.export_dir, self.prefs.base_model, id="train-panel")
        yield Footer(compact=True)

    def on_load(self) -> None:
        # start the (mostly cached) scan before the six tabs are composed: it runs while they are built
        self.state.scanning = True
        self.scan_worker()

    def on_mount(self) -> None:
        self.query_one(ItemTable).focus()
        self.query_one("#scan-progress").display = self.state.scanning

    # -- who owns the keyboard ---------------------------------------------------------------------------------------
    def typing(self) -> bool:
        """True while a text field, an editor or a dropdown has the focus: its keys are text, not commands."""
        # an open Select shows its choices in an OptionList, which has the focus then
        return isinstance(self.focused, Input | TextArea | Select | OptionList)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Global keys stand aside while the user types; decision keys work only where decisions are shown."""
        if action in GUARDED_ACTIONS and self.typing():
            return False
        if action in ("undo", "redo", "rescan"):
            return (self.query_one(TabbedContent).active or "browser") in DECISION_TABS
        return True

    def note(self, line: str) -> None:
        """Record ``line`` in the state log and show it as a notification."""
        self.state.log.append(line)
        self.notify(safe(line), timeout=3, markup=False)

    # -- the one place errors are shown ------------------------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            if isinstance(error, JobCancelled):
                return
            text = str(error) if isinstance(error, BackendError) else f"{type(error).__name__}: {error}"
            self.post_message(JobFailed(event.worker.group, text))

    def guard(self, job: str, call: Callable[..., T], *args: object) -> T | Failed:
        """Run a quick backend call on the UI thread; an expected failure becomes a JobFailed, never a crash."""
        try:
            return call(*args)
        except (BackendError, ValueError, OSError) as exc:
            self.post_message(JobFailed(job, str(exc)))
            return FAILED

    def on_job_failed(self, message: JobFailed) -> None:
        self.state.log.append(f"error in {message.job}: {message.message}")
        self.notify(
            safe(message.message), title=f"{message.job} failed", severity="error", timeout=8, markup=False
        )
        if message.job == "scan":
            self.state.scanning = False
            self.query_one("#scan-progress").display = False
        if message.job == "train":
            self.query_one(TrainPanel).set_running(False, "failed")

    # -- scanning -----------------------------------------------------------------------------------------------------
    def start_scan(self) -> None:
        """Run the scan in a worker; progress and the result come back as messages."""
        self.state.scanning = True
        self.query_one("#scan-progress").display = True
        self.scan_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def scan_worker(self) -> None:
        """Scan in a thread (cached metrics make a rescan quick)."""
        worker = get_current_worker()

        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()  # a cached rescan reports every item: ten redraws a second are enough
            if done == total or now - last[0] >= 0.1:
                last[0] = now
                self.post_message(ScanProgress(done, total))

        result = self.backend.scan(progress=progress, cancelled=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(ScanFinished(result))

    def on_scan_progress(self, message: ScanProgress) -> None:
        self.query_one("#scan-progress", ProgressBar).update(total=message.total, progress=message.done)

    def on_scan_finished(self, message: ScanFinished) -> None:
        self.state.result = message.result
        self.state.scanning = False
        self.query_one("#scan-progress").display = False
        self.state.decisions = self.backend.decision_map()
        if self.backend.edited_rels():  # captions edited in an earlier session count as edited
            self.backend.recheck_captions(message.result)
        self.query_one(BrowserPanel).load(message.result, self.state.decisions, self.backend.edited_rels())
        # the browser is what the user looks at first: paint it, then fill the other tabs
        self.call_after_refresh(self.load_other_tabs)
        self.state.log.append(f"scanned {len(message.result.records)} items")

    def load_other_tabs(self) -> None:
        """Fill the duplicates, tags, plan and overview tabs from the scan (after the browser is on screen)."""
        result = self.state.result
        if result is None or not self.query(TagsPanel):
            return
        self.refresh_duplicates()
        tags = self.query_one(TagsPanel)
        tags.set_concepts([c.name for c in result.dataset.concepts if not c.is_reg])
        self.count_tags(tags.scope())
        self.recompute_plan(self.state.settings)

    @work(thread=True, exclusive=True, exit_on_error=False, group="tags")
    def count_tags(self, concept: str | None) -> None:
        """Count tags (the caption audit reads every caption file) off the UI thread."""
        if self.state.result is not None:
            self.post_message(TagCounts(self.backend.tag_counts(self.state.result, concept)))

    def on_tag_counts(self, message: TagCounts) -> None:
        if self.query(TagsPanel):  # not when the app is closing
            self.query_one(TagsPanel).show_frequencies(message.counts)

    def action_rescan(self) -> None:
        """Scan again (reusing the cache)."""
        self.start_scan()

    # -- navigation ---------------------------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        """Show tab ``tab`` and focus its first widget (a form tab: its first field)."""
        self.query_one(TabbedContent).active = tab
        self.query_one(TAB_FOCUS[tab]).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # a click on a tab focuses the same widget as its digit key
        tab = event.pane.id or "browser"
        if tab in TAB_FOCUS and not self.query_one(TabbedContent).has_focus_within:
            self.query_one(TAB_FOCUS[tab]).focus()

    def action_leave_input(self) -> None:
        """Escape from a field: back to the tab's table, or to the tab bar on a form tab."""
        tab = self.query_one(TabbedContent).active or "browser"
        self.query_one(TAB_HOME[tab]).focus()

    def action_help(self) -> None:
        """Show the key help."""
        self.push_screen(HelpScreen())

    # -- decisions ------------------------------------------------------------------------------------------------------
    def on_browser_panel_decide(self, message: BrowserPanel.Decide) -> None:
        changed = self.guard("decisions", self.backend.decide, message.rels, message.decision)
        if not isinstance(changed, Failed):
            self.apply_decisions(changed, message.decision)

    def on_browser_panel_bulk_drop(self, message: BrowserPanel.BulkDrop) -> None:
        if not message.rels:
            return
        question = f"Drop all {len(message.rels)} items shown by the filter '{message.code}'? (u undoes it)"

        def answered(yes: bool | None) -> None:
            if yes:
                reason = f"filter {message.code}"
                changed = self.guard("decisions", self.backend.decide, message.rels, "drop", reason)
                if not isinstance(changed, Failed):
                    self.apply_decisions(changed, f"dropped {len(message.rels)} items ({message.code})")

        self.push_screen(ConfirmScreen(question), answered)

    def on_duplicates_panel_choose_keeper(self, message: DuplicatesPanel.ChooseKeeper) -> None:
        changed = self.guard("decisions", self.backend.choose_keeper, message.keeper, message.members)
        if not isinstance(changed, Failed):
            self.apply_decisions(changed, f"keeper {message.keeper}")
            self.refresh_duplicates()

    def action_undo(self) -> None:
        """Undo the last step (decisions, a bulk drop, a keeper choice or a caption edit) and say which it was."""
        self._step(self.backend.undo, "nothing to undo")

    def action_redo(self) -> None:
        """Redo the step the last undo reverted."""
        self._step(self.backend.redo, "nothing to redo")

    def _step(self, call: Callable[[], StepResult | None], nothing: str) -> None:
        step = self.guard("decisions", call)
        if isinstance(step, Failed):
            return
        if step is None:
            self.note(nothing)
            return
        self.apply_decisions(step.decisions, step.what)
        if step.keepers:
            self.refresh_duplicates()
        if step.captions:
            self.captions_changed(step.captions)

    def apply_decisions(self, changed: dict[str, str | None], what: str) -> None:
        """Reflect decisions the store changed in the state and the panels."""
        for rel, decision in changed.items():
            if decision is None:
                self.state.decisions.pop(rel, None)
            else:
                self.state.decisions[rel] = decision
        self.query_one(BrowserPanel).set_decisions(changed)
        self.post_message(DecisionsChanged(sorted(changed)))
        if len(changed) != 1 or what not in ("keep", "drop", "clear"):
            self.note(what)
        else:
            self.state.log.append(f"{what} {next(iter(changed))}")

    def refresh_duplicates(self) -> None:
        """Redraw the duplicate clusters with the keepers the store holds now."""
        if self.state.result is not None:
            clusters = self.backend.duplicate_clusters(self.state.result)
            chosen = set(self.backend.store().keepers())
            self.query_one(DuplicatesPanel).load(self.state.result, clusters, chosen)

    def on_decisions_changed(self, message: DecisionsChanged) -> None:
        self.recompute_plan(self.state.settings)  # dropped images leave the step count

    # -- preview and captions ---------------------------------------------------------------------------------------
    def on_browser_panel_highlighted(self, message: BrowserPanel.Highlighted) -> None:
        if not self.query(PreviewPanel):
            return  # the app is closing: the panels are gone
        record = self.query_one(BrowserPanel).record(message.rel) if message.rel else None
        caption = None
        if record is not None:
            caption = self.backend.caption_view(
                self.caption_of(record.item.rel),
                self.backend.keep_tokens(record.item.concept, self.state.settings),
            )
        edited = record is not None and self.backend.edited_caption(record.item.rel) is not None
        self.query_one(PreviewPanel).show(record, caption, edited)

    def caption_of(self, rel: str) -> str:
        """The caption training will read for ``rel``: the saved edit, else the file."""
        edited = self.backend.edited_caption(rel)
        if edited is not None:
            return edited
        record = self.query_one(BrowserPanel).record(rel)
        return self.backend.read_caption(record.item.caption_path if record else None)

    def on_browser_panel_edit_caption(self, message: BrowserPanel.EditCaption) -> None:
        self.edit_caption(message.rel, self.caption_of(message.rel))

    def on_suggested_tags_accepted(self, message: SuggestedTags.Accepted) -> None:
        self.edit_caption(message.rel, message.text)

    def edit_caption(self, rel: str, start: str) -> None:
        """Open the caption editor on ``rel`` starting from ``start``; a save goes to the review store."""
        record = self.query_one(BrowserPanel).record(rel)
        keep = self.backend.keep_tokens(record.item.concept if record else "", self.state.settings)

        def saved(text: str | None) -> None:
            if text is None:
                self.state.log.append(f"caption edit of {rel} discarded")
                return
            if isinstance(self.guard("captions", self.backend.save_caption, rel, text), Failed):
                return
            self.note(f"caption of {rel} saved")
            self.captions_changed([rel])

        editor = CaptionEditor(rel, start, lambda text: self.backend.caption_view(text, keep))
        self.push_screen(editor, saved)

    def captions_changed(self, rels: list[str]) -> None:
        """Captions training reads changed (an edit saved or undone): audit them again and redraw what shows them."""
        result = self.state.result
        if result is None:
            return
        if isinstance(self.guard("captions", self.backend.recheck_captions, result), Failed):
            return
        self.query_one(BrowserPanel).captions_edited(self.backend.edited_rels())
        self.count_tags(self.query_one(TagsPanel).scope())
        self.refresh_overview()
        self.state.log.append(f"captions re-audited after editing {', '.join(rels)}")

    # -- tags ---------------------------------------------------------------------------------------------------------
    def on_tags_panel_preview_requested(self, message: TagsPanel.PreviewRequested) -> None:
        if self.state.result is None:
            return
        changes = self.guard("tags", self.backend.tag_preview, self.state.result, message.edit)
        if not isinstance(changes, Failed):
            self.query_one(TagsPanel).show_preview(changes)

    def on_tags_panel_apply_requested(self, message: TagsPanel.ApplyRequested) -> None:
        if self.state.result is None:
            return
        summary = self.guard("tags", self.backend.tag_apply, self.state.result, message.edit)
        if isinstance(summary, Failed):
            return
        self.query_one(TagsPanel).show_status(summary)
        self.note(summary)
        self._refresh_tags()

    def on_tags_panel_undo_requested(self, message: TagsPanel.UndoRequested) -> None:
        summary = self.guard("tags", self.backend.tag_undo)
        if isinstance(summary, Failed):
            return
        self.query_one(TagsPanel).show_status(summary)
        self.note(summary)
        self._refresh_tags()

    def _refresh_tags(self) -> None:
        """Caption files changed on disk (a batch edit or its undo): audit and redraw everything that shows them."""
        if self.state.result is not None:
            self.captions_changed(["a batch edit"])

    def on_tags_panel_scope_changed(self, message: TagsPanel.ScopeChanged) -> None:
        self.count_tags(message.concept)

    # -- plan ---------------------------------------------------------------------------------------------------------
    def on_plan_panel_changed(self, message: PlanPanel.Changed) -> None:
        self.recompute_plan(message.settings)
        self.prefs.plan = message.settings
        self.remember()

    def remember(self) -> None:
        """Keep the form values in the workspace for the next session (a read-only workspace just forgets)."""
        try:
            save_prefs(self.backend.workspace, self.prefs)
        except OSError as exc:
            self.state.log.append(f"could not remember the form values: {exc}")

    def recompute_plan(self, settings: TrainConfig) -> None:
        """Recompute the one plan (the curation export writes, these settings) for the plan tab and the overview."""
        self.state.settings = settings
        if self.state.result is None:
            return
        try:
            self.state.plan = self.backend.plan(self.state.result, settings)
        except (BackendError, ValueError, ImportError) as exc:
            self.state.plan = None
            self.query_one(PlanPanel).show_error(f"plan unavailable: {exc}")
        else:
            self.query_one(PlanPanel).show(self.state.plan)
        self.refresh_overview()

    def refresh_overview(self) -> None:
        """Redraw the overview from the state."""
        if self.state.result is not None:
            self.query_one(OverviewPanel).show(self.state.result, self.state.decisions, self.state.plan)

    # -- export and train -------------------------------------------------------------------------------------------
    def on_train_panel_export_requested(self, message: TrainPanel.ExportRequested) -> None:
        if self.state.result is None:
            self.note("wait for the scan to finish")
            return
        out, base = message.out, message.base_model
        self.prefs.base_model, self.prefs.export_dir = base, str(out)
        self.remember()

        def answered(replace: bool | None) -> None:
            if replace:
                self.query_one(TrainPanel).log_line(f"exporting to {out} …")
                self.export_worker(out, base, True)

        if out.exists():
            self.push_screen(ConfirmScreen(f"{out} exists. Replace it with a new export?"), answered)
        else:
            self.query_one(TrainPanel).log_line(f"exporting to {out} …")
            self.export_worker(out, base, False)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def export_worker(self, out: Path, base_model: str, force: bool) -> None:
        """Export in a thread (it links or copies every kept image)."""
        assert self.state.result is not None
        config, summary = self.backend.export(self.state.result, out, base_model, self.state.settings, force)
        self.post_message(ExportFinished(out, config, summary))

    def on_export_finished(self, message: ExportFinished) -> None:
        self.state.log.append(f"exported to {message.out}")
        self.export_config = message.config
        self.query_one(TrainPanel).exported(message.summary, message.config is not None)

    def on_train_panel_train_requested(self, message: TrainPanel.TrainRequested) -> None:
        config = self.export_config
        if config is None:
            self.note("export first: training reads the exported config")
            return
        self.query_one(TrainPanel).set_running(True, "starting the trainer …")
        self.train_worker(config, self.backend.events_path(config))

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def train_worker(self, config: Path, events: Path) -> None:
        """Run the trainer subprocess and turn its events file into messages until it exits or is cancelled."""
        worker = get_current_worker()
        tail = EventTail(events)
        tail.offset = events.stat().st_size if events.exists() else 0  # only this run's events
        log = events.parent / "tui-train.log"
        self._train_log = log
        events.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            process = subprocess.Popen(
                self.backend.train_command(config), stdout=output, stderr=subprocess.STDOUT
            )
        self._process = process
        cancelled = False
        while process.poll() is None:
            if worker.is_cancelled and not cancelled:
                cancelled = True
                process.terminate()
            new = tail.poll()
            if new:
                self.post_message(_train_events(new))
            time.sleep(TAIL_INTERVAL)
        new = tail.poll()
        if new:
            self.post_message(_train_events(new))
        self.post_message(TrainExited(process.returncode, cancelled))

    def on_train_events(self, message: TrainEvents) -> None:
        self.query_one(TrainPanel).apply_events(message.events, message.sample)

    def on_train_exited(self, message: TrainExited) -> None:
        self._process = None
        if message.cancelled:
            status = "cancelled"
        elif message.returncode == 0:
            status = "finished"
        else:
            reason = self.query_one(TrainPanel).state.error or last_line(self._train_log)
            status = f"trainer failed (exit {message.returncode}): {reason or 'see tui-train.log'}"
        self.query_one(TrainPanel).set_running(False, status)
        self.note(f"training {status}")

    def on_train_panel_cancel_requested(self, message: TrainPanel.CancelRequested) -> None:
        self.workers.cancel_group(self, "train")
        self.query_one(TrainPanel).set_running(True, "cancelling …")

    def on_unmount(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # quitting must not leave a trainer running


def _train_events(events: list[dict[str, Any]]) -> TrainEvents:
    """The message for newly read events, with the newest sample decoded here (in the worker thread)."""
    samples = [e["path"] for e in events if e.get("event") == "sample" and e.get("path")]
    return TrainEvents(events, load_thumbnail(Path(str(samples[-1]))) if samples else None)


def create_app(
    dataset_root: Path,
    settings: ScanSettings | None = None,
    *,
    backend: Backend | None = None,
    training: TrainConfig | None = None,
    policy: Policy | None = None,
    export_dir: Path | None = None,
) -> ReviewApp:
    """The review app for ``dataset_root`` (``backend`` replaces the real curator calls in tests)."""
    settings = settings or ScanSettings()
    backend = backend or Backend(Path(dataset_root), settings, policy)
    backend.prepare()
    return ReviewApp(backend, training, export_dir)


__all__ = ["ReviewApp", "ReviewState", "TABS", "create_app"]
