"""The terminal view of ``dreamcurate plan``.

Example::

    print_plan(build_plan(dataset, sizes, PlanOptions()), Console())
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from curator.plan.build import Plan
from curator.plan.estimates import disk_size
from curator.textsafe import markup, safe


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _bucket_table(plan: Plan) -> Table:
    table = Table(title="Buckets (images per epoch, repeats included)", title_justify="left")
    for column in ("bucket", "images", "per epoch", "batches"):
        table.add_column(column, justify="right")
    batch = plan.options.settings.train_batch_size
    for b in plan.buckets:
        table.add_row(
            f"{b['width']}x{b['height']}", str(b["images"]), str(b["count"]), str(-(-b["count"] // batch))
        )
    return table


def _steps_table(plan: Plan) -> Table:
    o = plan.options
    table = Table(title="Steps", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("batches per epoch", str(plan.batches_per_epoch))
    table.add_row(
        f"optimizer steps per epoch (/ {o.settings.gradient_accumulation_steps} accum / {o.num_processes} GPU)",
        str(plan.steps_per_epoch),
    )
    table.add_row("epochs", str(plan.epochs))
    table.add_row("total optimizer steps", f"[bold]{plan.total_steps}[/]")
    stop = plan.stop_text_encoder_training
    table.add_row("stop_text_encoder_training", "to the end" if stop is None else f"[bold]{stop}[/]")
    if plan.seed_formula_stop_step is not None:
        table.add_row("tutorial formula (sensitivity x images x epochs)", str(plan.seed_formula_stop_step))
    return table


def _worst_crops(plan: Plan, limit: int = 5) -> Table | None:
    cropped = sorted((i for i in plan.images if i["crop_fraction"] > 0.1), key=lambda i: -i["crop_fraction"])
    if not cropped:
        return None
    table = Table(title=f"Most cropped images ({len(cropped)} lose over 10 %)", title_justify="left")
    for column in ("image", "size", "bucket", "cropped"):
        table.add_column(column)
    for i in cropped[:limit]:
        table.add_row(
            markup(i["path"]),
            f"{i['width']}x{i['height']}",
            f"{i['bucket'][0]}x{i['bucket'][1]}",
            f"{i['crop_fraction']:.0%}",
        )
    return table


def print_plan(plan: Plan, console: Console) -> None:
    """Print buckets, steps, the text-encoder stop step with its explanation, estimates and advice."""
    console.print(_bucket_table(plan))
    crops = _worst_crops(plan)
    if crops is not None:
        console.print(crops)
    console.print(_steps_table(plan))
    console.print(plan.te_explanation, markup=False)
    c = plan.checkpoints
    each, total = disk_size(c["each_bytes"]), disk_size(c["total_bytes"])
    s = plan.options.settings
    label = f"LoRA files (rank {s.network_dim})" if s.network_module else "Checkpoints"
    console.print(f"{label}: {c['count']} x {each} = {total} of disk")
    parts = ", ".join(f"{k} {v:g}" for k, v in plan.vram["parts"].items())
    console.print(f"GPU memory (estimate): {plan.vram_gb:.1f} GB ({parts})")
    for warning in plan.vram["warnings"]:
        console.print(f"[yellow]warning:[/] {markup(warning)}")
    t = plan.time
    console.print(f"Time (estimate): {_duration(t['seconds'])} at {t['its']:.2f} it/s ({t['source']})")
    for advice in plan.size_advice:
        style = "green" if advice["verdict"] == "ok" else "yellow"
        console.print(f"[{style}]{markup(advice['concept'])}[/]: {markup(advice['advice'])}")
    for note in plan.notes:
        console.print(f"note: {safe(note)}", markup=False)
