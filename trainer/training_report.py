"""``OUTPUT_DIR/training.html``: one self-contained page about a run, rewritten at each save point: the loss and the
validation-loss curves (inline SVG), the samples of each save point (embedded thumbnails), the settings.

Built from ``events.jsonl`` alone, so it shows a resumed run whole and can be rebuilt after the fact.

Example::

    html = training_report_html(read_events(out / "events.jsonl"), config)
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from curator.settings.config import TrainConfig

REPORT_FILENAME = "training.html"


def line_chart(
    points: list[tuple[float, float]], label: str, color: str, width: int = 900, height: int = 220
) -> str:
    """An SVG line through (x, y) points with its y range and x range written at the axes."""
    if not points:
        return f'<p class="muted">No {escape(label)} yet.</p>'
    pad_l, pad_r, pad_t, pad_b = 60, 16, 12, 26
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-9

    def at(x: float, y: float) -> str:
        px = pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r)
        py = pad_t + (1 - (y - y0) / (y1 - y0)) * (height - pad_t - pad_b)
        return f"{px:.1f},{py:.1f}"

    line = " ".join(at(x, y) for x, y in points)
    dots = (
        "".join(
            f'<circle cx="{at(x, y).split(",")[0]}" cy="{at(x, y).split(",")[1]}" r="3" fill="{color}"/>'
            for x, y in points
        )
        if len(points) <= 60
        else ""
    )
    bottom = height - pad_b
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f"<title>{escape(label)}</title>"
        f'<line x1="{pad_l}" y1="{bottom}" x2="{width - pad_r}" y2="{bottom}" stroke="currentColor" opacity=".3"/>'
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end" class="val">{y1:.4g}</text>'
        f'<text x="{pad_l - 6}" y="{bottom}" text-anchor="end" class="val">{y0:.4g}</text>'
        f'<text x="{pad_l}" y="{height - 6}" class="val">step {x0:g}</text>'
        f'<text x="{width - pad_r}" y="{height - 6}" text-anchor="end" class="val">step {x1:g}</text>'
        f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{line}"/>{dots}</svg>'
    )


def _samples_html(events: list[dict[str, Any]]) -> str:
    from curator.report.thumbs import thumbnail_uri

    by_step: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        if event.get("event") == "sample" and event.get("path"):
            by_step.setdefault(int(event.get("step", 0)), []).append(event)
    if not by_step:
        return '<p class="muted">No samples (set sample_prompts).</p>'
    rows = []
    for step, samples in sorted(by_step.items()):
        cells = []
        for sample in samples:
            uri = thumbnail_uri(Path(sample["path"]), size=192)
            image = f'<img src="{uri}" alt="">' if uri else '<span class="muted">(missing)</span>'
            cells.append(
                f"<figure>{image}<figcaption>{escape(str(sample.get('prompt', '')))}</figcaption></figure>"
            )
        rows.append(f'<h3>step {step}</h3><div class="samples">{"".join(cells)}</div>')
    return "".join(rows)


def training_report_html(events: list[dict[str, Any]], config: TrainConfig) -> str:
    """The page for a run's events and its settings."""
    from curator.report.assets import page

    losses = [
        (float(e["step"]), float(e["loss"]))
        for e in events
        if e.get("event") == "step" and _num(e.get("loss"))
    ]
    validation = [(float(e["step"]), float(e["loss"])) for e in events if e.get("event") == "validation"]
    end = next((e for e in reversed(events) if e.get("event") in ("end", "error")), None)
    status = (
        "running" if end is None else ("finished" if end["event"] == "end" else f"stopped: {end['message']}")
    )
    best = min(validation, key=lambda p: p[1]) if validation else None
    summary = f"<p>{len(losses)} steps logged; {escape(status)}."
    if best:
        summary += f" Lowest validation loss {best[1]:.5g} at step {best[0]:g}."
    summary += "</p>"
    settings = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in config.to_dict().items()
    )
    body = (
        f'<section id="loss"><h2>Loss</h2>{summary}{line_chart(losses, "training loss", "var(--accent)")}</section>'
        f'<section id="validation"><h2>Validation loss</h2>'
        f'<p class="muted">Held-out images (validation_split) at fixed timesteps and noise; it rises when the model '
        f"starts to memorize its training images.</p>{line_chart(validation, 'validation loss', '#d9822b')}</section>"
        f'<section id="samples"><h2>Samples</h2>{_samples_html(events)}</section>'
        f'<section id="settings"><h2>Settings</h2><table>{settings}</table></section>'
        "<style>.samples{display:flex;flex-wrap:wrap;gap:10px}.samples figure{margin:0;width:192px}"
        "figcaption{font-size:12px;word-break:break-word}</style>"
    )
    nav = [("loss", "Loss"), ("validation", "Validation"), ("samples", "Samples"), ("settings", "Settings")]
    return page(f"Training: {config.output_name}", str(config.output_dir), nav, body)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_training_report(run: Any) -> Path | None:
    """Rewrite ``OUTPUT_DIR/training.html`` from the run's events (main process)."""
    from curator.fsutil import atomic_write_text
    from trainer.events import EVENTS_FILENAME, read_events

    if not run.accelerator.is_main_process:
        return None
    path = run.output_dir / REPORT_FILENAME
    atomic_write_text(path, training_report_html(read_events(run.output_dir / EVENTS_FILENAME), run.config))
    return path
