"""The terminal summary of a scan (rich): findings per code, the worst items, concepts, cache statistics.

Example::

    print_summary(scan(Path("train")), Console())
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from curator.findings import Severity
from curator.scan.results import ItemRecord, ScanResult
from curator.textsafe import markup

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

#: A short meaning per finding code (codes of other checks fall back to their first message).
MEANINGS: dict[str, str] = {
    "corrupt": "cannot be decoded (empty, truncated, not an image)",
    "decompression_bomb": "declares too many pixels; refused before decoding",
    "unreadable": "cannot be read (permissions, missing file)",
    "decode_timeout": "took too long to decode; skipped",
    "too_small": "short side under the training resolution",
    "extreme_aspect": "its bucket crops away much of the image",
    "alpha_channel": "transparent pixels train composited on white",
    "grayscale": "no colour",
    "exact_duplicate": "same bytes or pixels as another image",
    "nested_images": "images Kohya will not read (subfolders or root)",
    "folder_no_repeats": "folder without a <repeats>_ prefix; Kohya skips it",
    "hidden_file": "hidden file in the dataset",
    "symlink_loop": "symlink not followed (loop or broken)",
    "image_symlink_outside": "image is a link leaving the dataset; never read, trained or exported",
    "no_images": "no images found",
    "kohya_skips_extension": "Kohya's file listing skips this extension (gif, tiff, mixed case)",
    "plain_folder": "not a Kohya layout; one concept, 1 repeat assumed",
    "caption_extension_mismatch": "captions use the other extension than training reads",
    "caption_symlink_outside": "caption links out of the dataset; not read",
    "name_too_long": "name too long for a caption file beside it",
    "cache_unavailable": "scan cache not kept",
    "check_error": "a check failed (a bug; please report)",
}


def display_path(rel: str) -> str:
    """A path safe to print: undecodable bytes in file names shown as the replacement character."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _safe(text: str) -> str:
    """Printable and free of rich markup (a file named ``[red].png`` stays a name), control characters escaped."""
    return markup(text)


def print_summary(result: ScanResult, console: Console, worst: int = 10, curation: Any = None) -> None:
    """Print the scan summary to ``console``; with the ``curation`` (what an export with the same options keeps), each
    code's row also says how many of its images the export keeps and leaves out."""
    ds = result.dataset
    console.print(
        f"[bold]{_safe(str(ds.root))}[/]  layout {ds.layout}, {len(result.records)} images, "
        f"captions '{ds.caption_extension}'"
    )
    console.print(_concepts_table(result))
    counts = _code_rows(result)
    if counts:
        console.print(_findings_table(counts, _fates(result, curation) if curation is not None else None))
    else:
        console.print("[green]No findings.[/]")
    worst_items = _worst_items(result.records, worst)
    if worst_items:
        console.print(_worst_table(worst_items))
    console.print(
        f"{result.analysed} analysed, {result.cached} from cache, {result.seconds:.2f} s"
        + (
            f"  ({result.analysed / result.seconds:.0f} images/s)"
            if result.analysed and result.seconds
            else ""
        )
    )


def _concepts_table(result: ScanResult) -> Table:
    table = Table(title="Concepts", title_justify="left", show_edge=False)
    table.add_column("concept")
    table.add_column("repeats", justify="right")
    table.add_column("images", justify="right")
    table.add_column("kind")
    for concept in result.dataset.concepts:
        kind = "regularization" if concept.is_reg else "training"
        table.add_row(_safe(concept.name), str(concept.repeats), str(len(concept.items)), kind)
    return table


def _code_rows(result: ScanResult) -> list[tuple[str, Severity, Counter[str], str]]:
    """Per code: the worst severity, the count per severity, the meaning."""
    rows: dict[str, tuple[Counter[str], str]] = {}
    for finding in result.all_findings():
        counts, first = rows.setdefault(finding.code, (Counter(), finding.message))
        counts[finding.severity.value] += 1
    meanings = _meanings()
    out = [
        (
            code,
            max((Severity(v) for v in counts), key=lambda s: s.rank),
            counts,
            meanings.get(code) or _shorten(first),
        )
        for code, (counts, first) in rows.items()
    ]
    return sorted(out, key=lambda row: (-row[1].rank, -sum(row[2].values()), row[0]))


def severity_counts(counts: Counter[str]) -> str:
    """'8 errors, 5 warnings': errors, warnings and infos apart."""
    parts = []
    for severity in ("error", "warning", "info"):
        n = counts.get(severity, 0)
        if n:
            parts.append(f"{n} {severity}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def _fates(result: ScanResult, curation: Any) -> dict[str, str]:
    """Per code: how many of the images with it the curation keeps and leaves out ('3 kept, 7 left out'), read from
    its verdicts, never decided here. Dataset-wide findings (no image) have none."""
    rels: dict[str, set[str]] = {}
    for finding in result.all_findings():
        if finding.path and finding.path in curation.verdicts:
            rels.setdefault(finding.code, set()).add(finding.path)
    out = {}
    for code, paths in rels.items():
        kept = sum(1 for rel in paths if curation.verdicts[rel].kept)
        parts = [f"{kept} kept" if kept else "", f"{len(paths) - kept} left out" if len(paths) > kept else ""]
        out[code] = ", ".join(p for p in parts if p)
    return out


def _meanings() -> dict[str, str]:
    """MEANINGS, plus what checks declare in an optional ``meanings = {code: text}`` class attribute."""
    from curator.checks import dataset_checks, image_checks

    merged = dict(MEANINGS)
    for check in [*image_checks(), *dataset_checks()]:
        merged.update(getattr(check, "meanings", {}) or {})
    return merged


def _shorten(message: str, limit: int = 70) -> str:
    return message if len(message) <= limit else message[: limit - 1].rstrip() + "…"


def _findings_table(
    rows: list[tuple[str, Severity, Counter[str], str]], fates: dict[str, str] | None
) -> Table:
    title = "Findings"
    if fates is not None:
        title += " (export: what an export with these options does with those images)"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("code", no_wrap=True)
    table.add_column("severity")
    table.add_column("count", justify="right")
    if fates is not None:
        table.add_column("export", justify="right")
    table.add_column("meaning", overflow="fold")
    for code, severity, counts, meaning in rows:
        style = _STYLE[severity.value]
        cells = [code, f"[{style}]{severity.value}[/]", severity_counts(counts)]
        if fates is not None:
            cells.append(fates.get(code, ""))
        table.add_row(*cells, _safe(meaning))
    return table


def _score(record: ItemRecord) -> tuple[int, int]:
    return (
        sum(1 for f in record.findings if f.severity is Severity.ERROR),
        sum(1 for f in record.findings if f.severity is Severity.WARNING),
    )


def _worst_items(records: list[ItemRecord], limit: int) -> list[ItemRecord]:
    bad = [r for r in records if _score(r) != (0, 0)]
    return sorted(bad, key=lambda r: (-_score(r)[0], -_score(r)[1], r.item.rel))[:limit]


def _worst_table(records: list[ItemRecord]) -> Table:
    table = Table(title="Worst items", title_justify="left", show_edge=False)
    table.add_column("image", overflow="fold")
    table.add_column("findings", overflow="fold")
    for record in records:
        ranked = sorted(record.findings, key=lambda f: -f.severity.rank)
        text = ", ".join(f"[{_STYLE[f.severity.value]}]{f.code}[/]" for f in ranked)
        table.add_row(_safe(record.item.rel), text)
    return table
