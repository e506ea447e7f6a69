"""The progress bar of every long step (scan, export): counts, rate and ETA on stderr, only on a terminal.

Example::

    with progress_bar("scanning", len(files), enabled=True) as advance:
        for f in files:
            work(f)
            advance()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Fewer items than this finish before a bar would be worth drawing.
PROGRESS_MIN_ITEMS = 50

ProgressCallback = Callable[[int, int], None]


@contextmanager
def progress_bar(
    label: str,
    total: int,
    enabled: bool,
    callback: ProgressCallback | None = None,
    *,
    min_items: int = PROGRESS_MIN_ITEMS,
    unit: str = "images",
) -> Iterator[Callable[[], None]]:
    """Yield ``advance()``, to call once per item done. A transient bar (``label``, done / total, ``unit``/s, elapsed,
    ETA) is drawn on stderr when ``enabled``, ``total >= min_items`` and stderr is a terminal; ``callback(done,
    total)`` is called on every advance either way (the TUI's progress)."""
    done = 0
    started = time.perf_counter()
    bar: Any = None
    task_id: Any = None
    if enabled and total >= min_items and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        bar.start()
        task_id = bar.add_task(label, total=total, rate="")

    def advance() -> None:
        nonlocal done
        done += 1
        if bar is not None:
            elapsed = time.perf_counter() - started
            bar.update(task_id, advance=1, rate=f"{done / elapsed:.1f} {unit}/s" if elapsed > 0 else "")
        if callback is not None:
            callback(done, total)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()
