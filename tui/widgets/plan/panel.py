"""The plan panel: epochs, batch, resolution, sensitivity, keep_tokens and the bucket range in; steps, stop step and
VRAM out. It never holds values training would refuse: the bucket range follows the resolution, and whatever
TrainConfig's own check rejects is shown in red and not planned."""

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
    ("min_bucket_reso", "Min bucket", "integer"),
    ("max_bucket_reso", "Max bucket", "integer"),
)


class PlanPanel(Vertical):
    """Edits :class:`PlanInputs`; the app recomputes the plan through ``curator.plan.steps`` on every valid change."""

    @dataclass
    class Changed(Message):
        """The user changed the inputs (all fields valid, and training would accept them)."""

        inputs: PlanInputs

    def __init__(self, inputs: PlanInputs, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.inputs = inputs
        # the bucket range the user asked for; the fields show it widened to hold the resolution, so typing 64 on
        # the way to 640 does not leave the range at 64
        self.wanted = (inputs.min_bucket_reso, inputs.max_bucket_reso)

    def compose(self) -> ComposeResult:
        with Horizontal(id="plan-inputs"):
            for name, label, kind in FIELDS:
                with Vertical(classes="plan-field"):
                    yield Label(label)
                    yield Input(str(getattr(self.inputs, name)), type=kind, id=f"plan-{name}", compact=True)  # type: ignore[arg-type]
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
        inputs = replace(self.inputs, **values)  # type: ignore[arg-type]
        if event.input.id in ("plan-min_bucket_reso", "plan-max_bucket_reso"):
            self.wanted = (inputs.min_bucket_reso, inputs.max_bucket_reso)
        elif event.input.id == "plan-resolution":
            wanted = replace(inputs, min_bucket_reso=self.wanted[0], max_bucket_reso=self.wanted[1])
            inputs = wanted.follow_resolution() if inputs.resolution >= 64 else wanted
            self._show_buckets(inputs)
        problem = inputs.problem()
        self.query_one("#plan-error", Static).update(
            Text(f"training would refuse this: {problem}", style="bold red") if problem else ""
        )
        if problem is None and inputs != self.inputs:
            self.inputs = inputs
            self.post_message(self.Changed(self.inputs))

    def _show_buckets(self, inputs: PlanInputs) -> None:
        """Put the bucket range the resolution needs in its fields (without a second round of Changed)."""
        for name in ("min_bucket_reso", "max_bucket_reso"):
            field = self.query_one(f"#plan-{name}", Input)
            text = str(getattr(inputs, name))
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
