"""The plan panel: training settings in (Kohya's names, the trainer's defaults: epochs, batch, resolution, TE
sensitivity, keep_tokens and the bucket range); steps, stop step and VRAM out. It never holds values training would
refuse: the bucket range follows the resolution, and whatever TrainConfig's own check rejects is shown in red and not
planned."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from curator.settings.config import ConfigError, TrainConfig
from tui.backend import PlanSummary
from tui.state import PLAN_TAB_FIELDS

#: (TrainConfig field, label, Input type): the settings' own names; every other setting keeps its value
FIELDS = (
    ("max_train_epochs", "Epochs", "integer"),
    ("train_batch_size", "Batch", "integer"),
    ("resolution", "Resolution", "integer"),
    ("text_encoder_sensitivity", "TE sensitivity", "number"),
    ("keep_tokens", "keep_tokens", "integer"),
    ("min_bucket_reso", "Min bucket", "integer"),
    ("max_bucket_reso", "Max bucket", "integer"),
)
assert tuple(name for name, _, _ in FIELDS) == PLAN_TAB_FIELDS


def follow_resolution(settings: TrainConfig) -> TrainConfig:
    """The bucket range widened to hold the resolution (training needs min <= resolution <= max)."""
    return settings.replace(
        min_bucket_reso=min(settings.min_bucket_reso, settings.resolution),
        max_bucket_reso=max(settings.max_bucket_reso, settings.resolution),
    )


def problem(settings: TrainConfig) -> str | None:
    """Why training would refuse these settings (TrainConfig's own check), None when it would not."""
    try:
        settings.validate(check_paths=False)
    except ConfigError as exc:
        return str(exc)
    return None


class PlanPanel(Vertical):
    """Edits the training settings (:class:`TrainConfig`); the app recomputes the one plan on every valid change."""

    @dataclass
    class Changed(Message):
        """The user changed the settings (every value valid, and training would accept them)."""

        settings: TrainConfig

    def __init__(self, settings: TrainConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        # the bucket range the user asked for; the fields show it widened to hold the resolution, so typing 64 on
        # the way to 640 does not leave the range at 64
        self.wanted = (settings.min_bucket_reso, settings.max_bucket_reso)

    def compose(self) -> ComposeResult:
        with Horizontal(id="plan-inputs"):
            for name, label, kind in FIELDS:
                with Vertical(classes="plan-field"):
                    yield Label(label)
                    yield Input(str(getattr(self.settings, name)), type=kind, id=f"plan-{name}", compact=True)  # type: ignore[arg-type]
        yield Static("", id="plan-error")
        yield Static("", id="plan-result")

    def _read(self) -> dict[str, int | float] | None:
        values: dict[str, int | float] = {}
        for name, _, kind in FIELDS:
            raw = self.query_one(f"#plan-{name}", Input).value.strip()
            try:
                values[name] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                return None  # half-typed number: keep the last plan
        return values

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        values = self._read()
        if values is None:
            return
        settings = self.settings.replace(**values)
        if event.input.id in ("plan-min_bucket_reso", "plan-max_bucket_reso"):
            self.wanted = (settings.min_bucket_reso, settings.max_bucket_reso)
        elif event.input.id == "plan-resolution":
            wanted = settings.replace(min_bucket_reso=self.wanted[0], max_bucket_reso=self.wanted[1])
            settings = follow_resolution(wanted) if settings.resolution >= 64 else wanted
            self._show_buckets(settings)
        why = problem(settings)
        self.query_one("#plan-error", Static).update(
            Text(f"training would refuse this: {why}", style="bold red") if why else ""
        )
        if why is None and settings != self.settings:
            self.settings = settings
            self.post_message(self.Changed(settings))

    def _show_buckets(self, settings: TrainConfig) -> None:
        """Put the bucket range the resolution needs in its fields (without a second round of Changed)."""
        for name in ("min_bucket_reso", "max_bucket_reso"):
            field = self.query_one(f"#plan-{name}", Input)
            text = str(getattr(settings, name))
            if field.value != text:
                with self.prevent(Input.Changed):
                    field.value = text

    def show(self, plan: PlanSummary) -> None:
        """Show the recomputed plan."""
        table = Table(show_header=False, box=None, padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        for label, value in plan.lines:
            table.add_row(label, value)
        for note in plan.notes:
            table.add_row("", Text(note, style="italic"))
        self.query_one("#plan-result", Static).update(table)

    def show_error(self, message: str) -> None:
        """Show why the plan cannot be computed."""
        self.query_one("#plan-result", Static).update(Text(message, style="red"))
