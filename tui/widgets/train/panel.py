"""Export and train: run the export, then the trainer as a subprocess whose events feed a progress bar, a loss
sparkline and the latest sample image. Cancel terminates the subprocess."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Log, ProgressBar, Sparkline, Static

from curator.textsafe import text as safe_text
from tui.state import TrainState
from tui.widgets.preview.image import make_image_widget, set_image

#: Loss points kept for the sparkline (older ones scroll out).
SPARK_POINTS = 200


class TrainPanel(Vertical):
    """Buttons and progress of export and training; the app runs the jobs and feeds :meth:`apply_events`."""

    @dataclass
    class ExportRequested(Message):
        """Export the curated dataset to ``out`` (with ``base_model`` in the written train config)."""

        out: Path
        base_model: str

    @dataclass
    class TrainRequested(Message):
        """Train from the exported config."""

        out: Path

    class CancelRequested(Message):
        """Stop the running training."""

    def __init__(self, default_out: Path, base_model: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.default_out = default_out
        self.base_model = base_model
        self.state = TrainState()

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-form"):
            with Vertical(classes="train-field"):
                yield Label("Export folder")
                yield Input(str(self.default_out), id="train-out", compact=True)
            with Vertical(classes="train-field"):
                yield Label("Base model (local file or folder)")
                yield Input(
                    self.base_model,
                    placeholder="path to a .safetensors or a diffusers folder",
                    id="train-base",
                    compact=True,
                )
        with Horizontal(id="train-buttons"):
            yield Button("Export", id="train-export", variant="primary", compact=True)
            yield Button("Train", id="train-start", variant="success", disabled=True, compact=True)
            yield Button("Cancel", id="train-cancel", variant="error", disabled=True, compact=True)
            yield Static("idle", id="train-status")
        with Horizontal(id="train-progress-row"):
            with Vertical(id="train-progress"):
                yield ProgressBar(id="train-bar", total=1, show_eta=False)  # a still bar until a run starts
                yield Label("loss")
                yield Sparkline([], id="train-loss")
                yield Label(
                    "validation loss (fixed timesteps and noise: comparable across runs)",
                    id="train-val-label",
                )
                yield Sparkline([], id="train-val-loss")
                yield Log(id="train-log", max_lines=500)
            yield make_image_widget(id="train-sample")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        out = Path(self.query_one("#train-out", Input).value.strip() or str(self.default_out))
        if event.button.id == "train-export":
            self.post_message(self.ExportRequested(out, self.query_one("#train-base", Input).value.strip()))
        elif event.button.id == "train-start":
            self.post_message(self.TrainRequested(out))
        elif event.button.id == "train-cancel":
            self.post_message(self.CancelRequested())

    def exported(self, summary: str, trainable: bool = True) -> None:
        """Export finished: say so, forget the last run's progress and status, and allow training."""
        self.log_line(summary)
        self.state = TrainState(status="exported: ready to train" if trainable else "exported")
        self.query_one("#train-bar", ProgressBar).update(total=1, progress=0)
        self.query_one("#train-loss", Sparkline).data = []
        self.query_one("#train-val-loss", Sparkline).data = []
        self.query_one("#train-status", Static).update(self.state.status)
        self.query_one("#train-start", Button).disabled = not trainable

    def set_running(self, running: bool, status: str) -> None:
        """Toggle the buttons for a running / stopped training and show ``status``."""
        self.state.running = running
        self.state.status = status
        self.query_one("#train-start", Button).disabled = running
        self.query_one("#train-export", Button).disabled = running
        self.query_one("#train-cancel", Button).disabled = not running
        self.query_one("#train-status", Static).update(status)

    def log_line(self, text: str) -> None:
        """Append one line to the log."""
        self.query_one("#train-log", Log).write_line(text)

    def apply_events(self, events: list[dict[str, Any]], sample: PILImage.Image | None = None) -> None:
        """Fold trainer events into the progress bar, the loss sparkline, the sample image (``sample``, decoded by
        the worker) and the log."""
        for event in events:
            self._fold(event)
        if sample is not None:
            set_image(self.query_one("#train-sample"), sample)
        bar = self.query_one("#train-bar", ProgressBar)
        bar.update(total=self.state.total or None, progress=self.state.step)
        self.query_one("#train-loss", Sparkline).data = list(self.state.losses)
        self.query_one("#train-val-loss", Sparkline).data = list(self.state.validation)
        if self.state.validation:
            self.query_one("#train-val-label", Label).update(
                f"validation loss {self.state.validation[-1]:.4f} (fixed noise: comparable across runs)"
            )
        last = events[-1] if events else {}
        if last.get("event") == "step":
            self.query_one("#train-status", Static).update(self._step_status(last))
        elif last and last.get("event") != "error":
            # any other kind (start-up stages such as loading the model or caching latents, ones added later)
            # shows its message: the status is never silent while the trainer works
            self.query_one("#train-status", Static).update(stage_status(last))

    def _fold(self, event: dict[str, Any]) -> None:
        """Update the state from one event; every event but ``step`` is also logged."""
        kind = event.get("event")
        if isinstance(event.get("total_steps"), int):
            self.state.total = int(event["total_steps"])
        if isinstance(event.get("step"), int):
            self.state.step = int(event["step"])
        if kind == "step" and isinstance(event.get("loss"), int | float):  # epoch means would double-count
            self.state.losses = (self.state.losses + [float(event["loss"])])[-SPARK_POINTS:]
        if kind == "validation" and isinstance(event.get("loss"), int | float):
            self.state.validation = (self.state.validation + [float(event["loss"])])[-SPARK_POINTS:]
        if kind == "sample" and event.get("path"):
            self.state.last_sample = Path(str(event["path"]))
        if kind != "step":
            self.log_line(_describe(event))
        if kind == "error":
            self.state.error = str(event.get("message", "?"))
            self.query_one("#train-status", Static).update(safe_text(f"error: {self.state.error}"))

    def _step_status(self, event: dict[str, Any]) -> str:
        status = f"step {self.state.step}/{self.state.total or '?'}"
        if isinstance(event.get("loss"), int | float):
            status += f"  loss {float(event['loss']):.4f}"
        eta = event.get("eta_s")
        if isinstance(eta, int | float):
            status += f"  eta {int(eta) // 60}:{int(eta) % 60:02d}"
        return status


def stage_status(event: dict[str, Any]) -> str:
    """The status line for a non-step event: its message (or kind), with ``n/N`` when it counts something."""
    text = str(event.get("message") or event.get("stage") or event.get("event", "?"))
    done = next((event[k] for k in ("done", "n", "current", "index") if isinstance(event.get(k), int)), None)
    total = next((event[k] for k in ("total", "of", "count") if isinstance(event.get(k), int)), None)
    if done is not None and total and f"{done}/{total}" not in text:
        text += f" {done}/{total}"
    return text


def _describe(event: dict[str, Any]) -> str:
    """One log line for a non-step event."""
    kind = str(event.get("event", "?"))
    rest = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "time", "ts"))
    return f"{kind}: {rest}" if rest else kind
