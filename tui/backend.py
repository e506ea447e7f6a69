"""The TUI's single doorway to the headless code: every curator and trainer function the app calls goes through
:class:`Backend`, so the app owns no logic and tests can swap one call for a fake (a hand-built scan result, say).

Example::

    backend = Backend(Path("train"), ScanSettings())
    result = backend.scan(progress=lambda done, total: None, cancelled=lambda: False)
    backend.decisions().set(["20_cat/a.png"], "drop")
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.dataset.workspace import Workspace
from curator.findings import Finding
from curator.review.curation import Policy
from curator.review.decisions import Change, DecisionStore, cluster_key
from curator.scan.results import ScanResult, ScanSettings
from curator.settings.config import TrainConfig
from tui.state import TagEditForm

if TYPE_CHECKING:
    from curator.captions.audit import CaptionAudit
    from curator.review.curation import Curation
    from curator.review.selection import Cluster

ProgressFn = Callable[[int, int], None]
CancelledFn = Callable[[], bool]


class BackendError(Exception):
    """An expected failure of a backend call: its message is one line for the user."""


class JobCancelled(Exception):
    """Raised inside a headless call when the worker that runs it was cancelled."""


@dataclass
class CaptionView:
    """A caption cut into tags with what training will do with it: the keep_tokens boundary and the CLIP limit."""

    text: str
    tags: list[str]
    tokens: int  # CLIP tokens of the whole caption (start / end tokens excluded)
    limit: int  # tokens CLIP reads (75 per chunk x chunks)
    keep_tokens: int  # leading TAGS kept in place when captions are shuffled
    lost_from: int | None = None  # index of the first tag past the token limit (None: all fit)


@dataclass
class StepResult:
    """What an undo or redo changed: item decisions (rel -> decision now, None: cleared), caption edits, keepers,
    and one line naming the step ("undid: drop of 8 items (filter blurry)")."""

    decisions: dict[str, str | None]
    captions: list[str]
    keepers: bool
    what: str


def describe_step(changes: list[Change]) -> str:
    """One line naming a logged step: what it did and to how many items, with its reason."""
    keepers = [c for c in changes if c.kind == "keeper"]
    if keepers:
        return f"keeper choice {_name(str(keepers[0].value))}"
    captions = [c for c in changes if c.kind == "caption"]
    if captions:
        return f"caption edit of {_name(captions[0].key)}" + (
            f" +{len(captions) - 1}" if len(captions) > 1 else ""
        )
    items = [c for c in changes if c.kind == "item"]
    actions = sorted({c.value or "clear" for c in items})
    reasons = sorted({c.reason for c in items if c.reason and c.reason != "review"})
    what = "/".join(actions)
    target = _name(items[0].key) if len(items) == 1 else f"{len(items)} items"
    return f"{what} of {target}" + (f" ({', '.join(reasons)})" if reasons else "")


def _name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


@dataclass
class TagChange:
    """One caption a batch edit would change, with the tags it loses and gains (normalised comparison, written
    forms shown) and ``moved`` when only the order changes."""

    rel: str
    before: str
    after: str
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    moved: bool = False


@dataclass
class PlanSummary:
    """The headline numbers of a plan, as the plan panel and the overview show them."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # (label, value), in display order
    notes: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(
        default_factory=dict
    )  # machine-readable numbers (total_steps, stop step...)


class Backend:
    """Calls into ``curator`` and ``trainer`` for one dataset. Stateless apart from paths and settings."""

    def __init__(self, dataset_root: Path, settings: ScanSettings, policy: Policy | None = None) -> None:
        self.dataset_root = Path(dataset_root)
        self.settings = settings
        self.policy = policy or Policy()  # the export policy (--strict, --drop, --target-size, --balance)
        self.workspace = Workspace.for_dataset(self.dataset_root, settings.workspace)
        self._store: DecisionStore | None = None
        self._curation: Curation | None = None  # the last plan's, for what the caption preview shows
        self._audit: CaptionAudit | None = None  # the last caption audit (recheck_captions keeps it current)

    # -- scanning ---------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Start the scan's process-pool helpers before the app takes the terminal over.

        From a worker thread the scan starts its pool through multiprocessing's fork server, whose resource
        tracker is launched with ``sys.stderr.fileno()``; inside a running Textual app stderr is a capture object
        whose fileno is -1, so starting them there fails ("bad value(s) in fds_to_keep"). Started here, once, they
        are simply reused.
        """
        import multiprocessing

        if self.settings.workers <= 1 or "forkserver" not in multiprocessing.get_all_start_methods():
            return
        from multiprocessing import forkserver, resource_tracker

        resource_tracker.ensure_running()
        forkserver.ensure_running()

    def scan(self, progress: ProgressFn, cancelled: CancelledFn) -> ScanResult:
        """Scan the dataset (cached metrics are reused), reporting progress; raises JobCancelled when cancelled."""
        from curator.scan.run import scan

        def on_progress(done: int, total: int) -> None:
            if cancelled():
                raise JobCancelled()
            progress(done, total)

        return scan(self.dataset_root, self.settings, on_progress=on_progress)

    # -- decisions (curator.review.decisions.DecisionStore, the store export reads) ---------------------------------------
    def store(self) -> DecisionStore:
        """The workspace's decision store, opened once."""
        if self._store is None:
            self._store = DecisionStore(self.workspace)
        return self._store

    def decision_map(self) -> dict[str, str]:
        """Every current keep / drop decision: rel -> action."""
        return {rel: d.action for rel, d in self.store().all().items()}

    def decide(self, rels: list[str], decision: str, reason: str = "review") -> dict[str, str | None]:
        """Keep, drop or clear ``rels`` as one undoable step; returns rel -> new decision (None: cleared)."""
        store = self.store()
        with store.batch():
            for rel in rels:
                if decision == "clear":
                    store.clear(rel)
                else:
                    store.set(rel, decision, reason)
        return {rel: (None if decision == "clear" else decision) for rel in rels}

    def choose_keeper(self, keeper: str, members: list[str]) -> dict[str, str | None]:
        """Record ``keeper`` for the cluster of ``members``, keep it and drop the others, as one undoable step."""
        store = self.store()
        with store.batch():
            store.set_keeper(cluster_key(members), keeper)
            for rel in members:
                store.set(
                    rel,
                    "keep" if rel == keeper else "drop",
                    "keeper" if rel == keeper else f"duplicate of {keeper}",
                )
        return {rel: ("keep" if rel == keeper else "drop") for rel in members}

    def curation(self, result: ScanResult) -> Curation:
        """The one curation (review decisions, then the export policy): what export writes and the plan counts."""
        from curator.review.curation import build_curation

        return build_curation(result, self.store(), self.policy)

    def duplicate_clusters(self, result: ScanResult) -> list[Cluster]:
        """The duplicate clusters as export sees them (keepers chosen in review win)."""
        return self.curation(result).clusters

    def keep_tokens(self, concept: str, settings: TrainConfig) -> int:
        """The keep_tokens training will use for ``concept``: the setting, else the caption audit's advice that the
        export writes (as of the last plan)."""
        if settings.keep_tokens or self._curation is None:
            return settings.keep_tokens
        return self._curation.keep_tokens().get(concept, 0)

    def training_settings(self) -> TrainConfig:
        """The training settings the plan tab starts from: the defaults, at the resolution and buckets scanned."""
        s = self.settings
        return TrainConfig(
            resolution=s.resolution,
            min_bucket_reso=s.min_bucket_reso,
            max_bucket_reso=s.max_bucket_reso,
            bucket_reso_steps=s.bucket_reso_steps,
            bucket_no_upscale=s.bucket_no_upscale,
        )

    def undo(self) -> StepResult | None:
        """Undo the last step; None when there was nothing to undo."""
        return self._step_result(self.store().undo(), "undid")

    def redo(self) -> StepResult | None:
        """Redo the step the last undo reverted; None when there is nothing to redo."""
        return self._step_result(self.store().redo(), "redid")

    def _step_result(self, changes: list[Change], verb: str) -> StepResult | None:
        if not changes:
            return None
        current = self.store().all()
        rels = sorted({c.key for c in changes if c.kind == "item"})
        decisions = {rel: (current[rel].action if rel in current else None) for rel in rels}
        captions = sorted({c.key for c in changes if c.kind == "caption"})
        keepers = any(c.kind == "keeper" for c in changes)
        return StepResult(decisions, captions, keepers, f"{verb}: {describe_step(changes)}")

    def edited_caption(self, rel: str) -> str | None:
        """The caption saved in the review for ``rel`` (None when not edited)."""
        return self.store().caption(rel)

    def save_caption(self, rel: str, text: str) -> None:
        """Save an edited caption (applied to the exported copy; the user's file is never touched)."""
        self.store().set_caption(rel, text)

    def edited_rels(self) -> set[str]:
        """Items whose caption was edited in the review."""
        return set(self.store().captions())

    def caption_audit(self, result: ScanResult) -> CaptionAudit:
        """The scan's caption audit (same settings) over the captions training will read: the review's edits
        replace their files' text. ``dreamcurate tags`` runs the same audit over the files."""
        from curator.captions.audit import audit_captions, load_workspace_captions
        from curator.checks.base import CheckContext
        from curator.checks.captions import CaptionsCheck, audit_settings

        check = CaptionsCheck()
        params = result.settings.check_params(check.name, check.defaults)
        settings = audit_settings(params, CheckContext(result.settings))
        items = [r.item for r in result.records]
        records = load_workspace_captions(items, self.workspace, self.store().captions())
        return audit_captions(records, settings)

    def recheck_captions(self, result: ScanResult) -> None:
        """Put the findings of :meth:`caption_audit` in ``result`` in place of the scan's caption findings: a
        shortened caption loses caption_too_long at once, in the row, the preview and the counts."""
        from curator.captions.findings import CODES

        audit = self.caption_audit(result)
        self._audit = audit
        fresh: dict[str | None, list[Finding]] = {}
        for finding in audit.findings:
            fresh.setdefault(finding.path, []).append(finding)
        for record in result.records:
            kept = [f for f in record.findings if f.code not in CODES]
            record.findings = kept + fresh.get(record.item.rel, [])
        result.findings = [f for f in result.findings if f.code not in CODES] + fresh.get(None, [])

    # -- captions ---------------------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """CLIP tokens of ``text`` (start / end excluded), with the offline tokenizer."""
        from curator.captions.tokenizer import count_tokens

        return count_tokens(text)

    def caption_view(self, text: str, keep_tokens: int) -> CaptionView:
        """``text`` cut into tags as Kohya reads it, with its token count and the first tag CLIP will not read.

        A caption with Kohya's ``|||`` separator keeps its prefix in place instead of ``keep_tokens`` tags."""
        from curator.captions.parse import parse_caption

        caption = parse_caption(text)
        tags = list(caption.tags)
        kept = len(caption.fixed) if caption.has_separator else keep_tokens
        limit = self.settings.max_token_length
        lost_from = None
        for index in range(len(tags)):
            if self.count_tokens(", ".join(tags[: index + 1])) > limit:
                lost_from = index
                break
        return CaptionView(caption.text, tags, self.count_tokens(caption.text), limit, kept, lost_from)

    def read_caption(self, caption_path: Path | None) -> str:
        """The caption line training reads ('' when there is none or it cannot be read)."""
        from curator.captions.parse import read_caption

        return read_caption(caption_path).text

    # -- tags -------------------------------------------------------------------------------------------------------
    def tag_counts(self, result: ScanResult, concept: str | None = None) -> list[tuple[str, int]]:
        """Captions holding each tag (counted as ``dreamcurate tags`` counts: normalised, once per caption, shown in
        its most common written form) over the training concepts or ``concept``; edited captions count as edited.
        Most frequent first."""
        from collections import Counter

        audit = self._audit if self._audit is not None else self.caption_audit(result)
        counts: Counter[str] = Counter()
        display: dict[str, str] = {}
        for name, c in audit.concepts.items():
            if c.is_reg or (concept is not None and name != concept):
                continue
            counts.update(c.frequency)
            for tag, form in c.display.items():
                display.setdefault(tag, form)
        return sorted(((display.get(t, t), n) for t, n in counts.items()), key=lambda kv: (-kv[1], kv[0]))

    @staticmethod
    def tag_edits(edit: TagEditForm) -> Any:
        """The ``curator.captions.edit.TagEdits`` a form describes; BackendError when an argument is missing."""
        from curator.captions.edit import TagEdits

        if edit.operation == "dedupe":
            return TagEdits(dedupe=True)
        if not edit.first:
            raise BackendError(f"'{edit.operation}' needs a tag")
        if edit.operation == "front":
            return TagEdits(move_to_front=(edit.first,))
        if edit.operation == "trigger":
            return TagEdits(add_trigger=edit.first)
        if edit.operation == "remove":
            return TagEdits(remove=(edit.first,))
        if edit.operation == "replace":
            if not edit.second:
                raise BackendError("'replace' needs the old and the new tag")
            return TagEdits(replace=((edit.first, edit.second),))
        raise BackendError(f"unknown edit {edit.operation!r}")

    def tag_preview(self, result: ScanResult, edit: TagEditForm) -> list[TagChange]:
        """What a batch edit would change in the caption files of its concept scope (nothing is written)."""
        from curator.captions.edit import plan_changes

        changes, _ = plan_changes(_scoped(result, edit), self.tag_edits(edit))
        return [_tag_change(c.rel, _first_line(c.old), _first_line(c.new)) for c in changes]

    def tag_apply(self, result: ScanResult, edit: TagEditForm) -> str:
        """Apply a batch edit to the caption files exactly as ``tags --apply`` does (journal first, atomic
        writes, undoable); returns a one-line summary."""
        from curator.captions.edit import EditConflict, apply_changes, plan_changes

        changes, _ = plan_changes(_scoped(result, edit), self.tag_edits(edit))
        if not changes:
            return "nothing to change"
        self._audit = None  # the files change: the next count reads them again
        try:
            apply_changes(changes, self.workspace.ensure())
        except EditConflict as exc:
            raise BackendError(str(exc)) from exc
        except OSError as exc:  # the lock held by another writer, a disk error mid-way (the journal has it)
            raise BackendError(f"{exc} (Undo last restores what was written)") from exc
        return f"{len(changes)} captions changed (Undo last, or dreamcurate tags --undo)"

    def tag_undo(self) -> str:
        """Undo the last applied batch edit (``tags --undo``); returns a one-line summary."""
        from curator.captions.edit import undo_last

        self._audit = None
        try:
            undone = undo_last(self.workspace)
        except (OSError, ValueError) as exc:  # a journal that is not safe to restore, the lock, a disk error
            raise BackendError(f"could not undo: {exc}") from exc
        if undone.journal is None:
            return "no batch edit to undo"
        text = f"{len(undone.restored)} captions restored"
        if undone.conflicts:
            text += f"; {len(undone.conflicts)} changed since and left alone"
        return text

    # -- plan, export, train ------------------------------------------------------------------------------------
    def plan(self, result: ScanResult, settings: TrainConfig) -> PlanSummary:
        """The one plan (``curator.review.curation.plan_curation``: what export keeps, these settings), as display
        lines."""
        from curator.plan.build import PlanOptions
        from curator.review.curation import plan_curation

        curation = self._curation = self.curation(result)
        plan = plan_curation(curation, PlanOptions(settings))
        hours = plan.time["seconds"] / 3600
        stop = plan.stop_text_encoder_training
        lines = [
            ("training images", str(curation.kept_count)),
            ("buckets", str(len(plan.buckets))),
            ("steps per epoch", str(plan.steps_per_epoch)),
            ("total steps", str(plan.total_steps)),
            ("text encoder stops at", "the end" if stop is None else str(stop)),
            (
                "tutorial formula",
                "-"
                if plan.seed_formula_stop_step is None
                else f"{plan.seed_formula_stop_step} (sensitivity x images x epochs)",
            ),
            ("VRAM", f"{plan.vram_gb:.1f} GB"),
            ("time", f"{hours:.1f} h at {plan.time['its']:.2f} it/s ({plan.time['source']})"),
            ("checkpoints", f"{plan.checkpoints['count']} x {plan.checkpoints['each_gb']} GB"),
        ]
        left = curation.left_out_text()
        notes = [f"left out: {left}"] if left else []
        notes += [plan.te_explanation] if plan.te_explanation else []
        notes += list(plan.vram.get("warnings", []))
        notes += [a["advice"] for a in plan.size_advice if a.get("verdict") != "ok"]
        notes += plan.notes
        values = plan.to_json()
        return PlanSummary(lines=lines, notes=notes, values=values)

    def export(
        self, result: ScanResult, out: Path, base_model: str, settings: TrainConfig, force: bool = False
    ) -> tuple[Path, str]:
        """Export as ``dreamcurate export`` does (the one curation, the plan tab's settings in both configs and
        plan.json). Returns (train.toml, summary)."""
        from curator.export.folder import ExportError, ExportOptions, export_dataset
        from curator.plan.build import PlanOptions
        from curator.review.curation import plan_curation

        curation = self.curation(result)
        plan = plan_curation(curation, PlanOptions(settings)).to_json() if curation.kept_count else None
        options = ExportOptions(force=force, base_model=base_model, settings=settings)
        try:
            report = export_dataset(curation, Path(out), options, plan)
        except ExportError as exc:
            raise BackendError(str(exc)) from exc
        summary = f"exported {report.kept} images to {report.out} ({report.dropped} left out)"
        return report.out / "train.toml", summary

    def events_path(self, config: Path) -> Path:
        """Where the trainer started with ``config`` writes its JSON-lines events."""
        from curator.settings.config import read_config
        from trainer.events import EVENTS_FILENAME

        # relative paths in a config are relative to the working directory, which the subprocess inherits
        return Path(read_config(config).output_dir) / EVENTS_FILENAME

    def train_command(self, config: Path) -> list[str]:
        """The trainer subprocess' command line: the same interpreter, ``-m trainer CONFIG``."""
        return [sys.executable, "-m", "trainer", str(config)]


def _scoped(result: ScanResult, edit: TagEditForm) -> list[Any]:
    """The items a tag edit applies to: its concept, or every training concept."""
    return [i for i in result.dataset.items if edit.concept is None or i.concept == edit.concept]


def _tag_change(rel: str, before: str, after: str) -> TagChange:
    """A :class:`TagChange` with its tag diff (a repeated tag that goes counts as removed once per repeat)."""
    from collections import Counter

    from curator.captions.parse import normalize_tag, parse_caption

    old, new = parse_caption(before).tags, parse_caption(after).tags
    old_n, new_n = Counter(normalize_tag(t) for t in old), Counter(normalize_tag(t) for t in new)
    removed, added = [], []
    for tag in old:
        if old_n[normalize_tag(tag)] > new_n[normalize_tag(tag)]:
            old_n[normalize_tag(tag)] -= 1
            removed.append(tag)
    old_n = Counter(normalize_tag(t) for t in old)
    for tag in new:
        if new_n[normalize_tag(tag)] > old_n[normalize_tag(tag)]:
            new_n[normalize_tag(tag)] -= 1
            added.append(tag)
    moved = not removed and not added and before != after
    return TagChange(rel, before, after, removed, added, moved)


def _first_line(data: bytes) -> str:
    """The first line of a caption file's bytes (what training reads)."""
    text = data.decode("utf-8", errors="replace")
    return text.splitlines()[0].strip() if text.strip() else ""
