"""JSON-lines training events: ``<output_dir>/events.jsonl``, one object per line, flushed as it happens.

The TUI (and any script) follows the file. Every event has ``event`` (its kind) and ``time`` (Unix seconds). Kinds:

- ``start``: total_steps, steps_per_epoch, epochs, te_stop_step, resumed_from_step, device, processes,
  mixed_precision
- ``step``: step, epoch, loss, lr (UNet), lr_te (or null once the text encoder stopped), it_s, eta_s
- ``epoch``: epoch (just finished), step, loss (mean over the epoch's steps)
- ``te_stop``: step, epoch (the text encoder is frozen from here on)
- ``checkpoint``: step, epoch, path, state (the resume state folder, or null)
- ``sample``: step, epoch, path, prompt
- ``end``: step, epoch, path (the final model), seconds
- ``error``: step, epoch, message, last_checkpoint (null when none was written)
- ``notice``: message (a setting was adjusted, e.g. fp16 on a CPU)
- ``stage``: stage (``data``, ``model``, ``latents``), message, and for ``latents`` done / total images encoded;
  the last event of a stage has seconds. All before ``start``
- ``validation``: step, epoch, loss (the validation loss at fixed timesteps and noise), images

Example::

    log = EventLog(Path("out/events.jsonl"))
    log.emit("step", step=1, epoch=1, loss=0.12)
    [e["event"] for e in read_events(Path("out/events.jsonl"))]
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, TextIO

EVENTS_FILENAME = "events.jsonl"


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; a NaN loss is exactly what an error event must be able to carry.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class EventLog:
    """Writes events to a JSON-lines file (one line per event, flushed at once), appending or starting the file
    afresh. A disabled log (``path`` None: processes other than the main one) writes nothing."""

    def __init__(self, path: Path | None, append: bool = True) -> None:
        self.path = path
        self._handle: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 (held for the run)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one event and return it."""
        event = {"event": kind, "time": round(time.time(), 3), **{k: _clean(v) for k, v in fields.items()}}
        if self._handle is not None:
            self._handle.write(json.dumps(event) + "\n")
            self._handle.flush()
        return event

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event in ``path`` (a torn last line of a killed run is skipped)."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
