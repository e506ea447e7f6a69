"""What a run says before step 1: one line per stage on stderr (main process) and a ``stage`` event, so neither the
terminal nor the TUI is silent while the dataset is read, the model loads and the latents are cached.

Example::

    with stage(events, main=True, name="model", message="loading base.safetensors") as done:
        model = load_models(config)
        done(f"model loaded ({model.family})")
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from trainer.events import EventLog


def announce(events: EventLog, main: bool, name: str, message: str, **fields: Any) -> None:
    """A ``stage`` event and, on the main process, the same line on stderr."""
    events.emit("stage", stage=name, message=message, **fields)
    if main:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stage(events: EventLog, main: bool, name: str, message: str) -> Iterator[Callable[..., None]]:
    """Announce a stage, run it, announce its result with the seconds it took: ``done(message, **fields)``."""
    started = time.monotonic()
    announce(events, main, name, message)
    result: dict[str, Any] = {}

    def done(text: str, **fields: Any) -> None:
        result.update(message=text, **fields)

    yield done
    seconds = round(time.monotonic() - started, 2)
    text = result.pop("message", f"{name} done")
    announce(events, main, name, f"{text} ({seconds:.1f} s)", seconds=seconds, **result)
