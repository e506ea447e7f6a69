"""The plan panel: training settings in (Kohya's names, the trainer's defaults); steps, stop step and VRAM out."""

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

#: (TrainConfig field, label, Input type): the settings' own names; every other setting keeps its value
FIELDS = (
    ("max_train_epochs", "Epochs", "integer"),
    ("train_batch_size", "Batch", "integer"),
    ("resolution", "Resolution", "integer"),
    ("text_encoder_sensitivity", "TE sensitivity", "number"),
    ("keep_tokens", "keep_tokens", "integer"),
)


class PlanPanel(Vertical):
    """Edits the training settings (:class:`TrainConfig`); the app recomputes the one plan on every valid change.
    A combination the trainer would refuse is shown as its one-line reason and never becomes the plan's."""

    @dataclass
    class Changed(Message):
        """The user changed the settings (every value valid for training)."""

        settings: TrainConfig

    def __init__(self, settings: TrainConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Horizontal(id="plan-inputs"):
            for name, label, kind in FIELDS:
                with Vertical(classes="plan-field"):
                    yield Label(label)
                    yield Input(str(getattr(self.settings, name)), type=kind, id=f"plan-{name}")  # type: ignore[arg-type]
        yield Static("", id="plan-result")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        values: dict[str, int | float] = {}
        for name, _, kind in FIELDS:
            raw = self.query_one(f"#plan-{name}", Input).value.strip()
            try:
                values[name] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                return  # half-typed number: keep the last plan
        try:
            settings = self.settings.replace(**values).validate(check_paths=False)
        except ConfigError as exc:
            self.show_error(f"not a setting training accepts: {exc}")
            return
        self.settings = settings
        self.post_message(self.Changed(settings))

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
