"""The plan panel: epochs, batch, resolution, sensitivity and keep_tokens in; steps, stop step and VRAM out."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from tui.backend import PlanSummary
from tui.state import PlanInputs

#: (field of PlanInputs, label, Input type)
FIELDS = (
    ("epochs", "Epochs", "integer"),
    ("batch_size", "Batch", "integer"),
    ("resolution", "Resolution", "integer"),
    ("sensitivity", "TE sensitivity", "number"),
    ("keep_tokens", "keep_tokens", "integer"),
)


class PlanPanel(Vertical):
    """Edits :class:`PlanInputs`; the app recomputes the plan through ``curator.plan.steps`` on every valid change."""

    @dataclass
    class Changed(Message):
        """The user changed the inputs (all fields valid)."""

        inputs: PlanInputs

    def __init__(self, inputs: PlanInputs, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.inputs = inputs

    def compose(self) -> ComposeResult:
        with Horizontal(id="plan-inputs"):
            for name, label, kind in FIELDS:
                with Vertical(classes="plan-field"):
                    yield Label(label)
                    yield Input(str(getattr(self.inputs, name)), type=kind, id=f"plan-{name}")  # type: ignore[arg-type]
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
        if values["epochs"] < 1 or values["batch_size"] < 1 or values["resolution"] < 64:
            return
        if not 0.0 <= values["sensitivity"] <= 1.0 or values["keep_tokens"] < 0:
            return
        self.inputs = replace(self.inputs, **values)  # type: ignore[arg-type]
        self.post_message(self.Changed(self.inputs))

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
