"""How suggested tags meet a caption already on disk: ``new-only`` (only images without a caption), ``replace``,
``append`` (after the existing tags), ``prepend`` (before them). Tags already in the caption are not repeated
(compared in normalised form) and the trigger word ends up first in every caption written.

The result is a list of :class:`curator.captions.edit.CaptionChange`, which :func:`curator.captions.edit.apply_changes`
writes with the same undo journal as ``tags --apply``. Only the first line of a caption (what training reads)
changes; other lines and the line ending are kept.

Example::

    line = merge_line("1girl, smile", ["smile", "outdoors"], "append", trigger="sks")
    assert line == "sks, 1girl, smile, outdoors"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from curator.captions.audit import contains_trigger
from curator.captions.edit import CaptionChange
from curator.captions.parse import KEEP_TOKENS_SEPARATOR, normalize_tag, read_caption, split_tags
from curator.dataset.discover import Item

MODES = ("new-only", "replace", "append", "prepend")


def _without(tags: Iterable[str], present: Iterable[str]) -> list[str]:
    """``tags`` minus those in ``present`` and minus repeats, in normalised form."""
    seen = {normalize_tag(t) for t in present}
    out = []
    for tag in tags:
        key = normalize_tag(tag)
        if key and key not in seen:
            seen.add(key)
            out.append(tag)
    return out


def _trigger_first(parts: list[list[str]], trigger: str | None) -> None:
    """Put ``trigger`` first: moved when a tag holds it (``ohwx woman`` holds ``ohwx``), else added."""
    if not trigger:
        return
    key = normalize_tag(trigger)
    for seg in parts:
        holder = next((t for t in seg if contains_trigger(normalize_tag(t), key)), None)
        if holder is not None:
            seg.remove(holder)
            parts[0].insert(0, holder)
            return
    parts[0].insert(0, trigger)


def merge_line(existing: str, suggested: Sequence[str], mode: str, trigger: str | None = None) -> str:
    """The caption line ``mode`` makes of the ``existing`` line (``""``: none) and the ``suggested`` tags.

    A ``|||`` caption keeps its fixed prefix: new tags join the shuffled part after it."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    if mode in ("new-only", "replace") or not existing.strip():
        parts = [_without(suggested, ())]
        _trigger_first(parts, trigger)
        return ", ".join(parts[0])
    raw = existing.split(KEEP_TOKENS_SEPARATOR) if KEEP_TOKENS_SEPARATOR in existing else [existing]
    parts = [split_tags(p) for p in raw]
    before = [list(seg) for seg in parts]
    flex = parts[1] if len(parts) > 1 else parts[0]
    new = _without(suggested, [t for seg in parts for t in seg])
    flex[:] = flex + new if mode == "append" else new + flex
    _trigger_first(parts, trigger)
    if parts == before:  # nothing to add: the caption stays exactly as written
        return existing
    return f" {KEEP_TOKENS_SEPARATOR} ".join(", ".join(seg) for seg in parts)


@dataclass
class CaptionPlan:
    """What writing the suggestions would do: the changes, and the images left as they are (with why)."""

    changes: list[CaptionChange] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # rel: the caption already says it, or new-only skipped it
    notes: list[str] = field(default_factory=list)  # rel: reason (not UTF-8, no suggestion)
    #: rel -> the first line training would read after the write (for the audit of the result)
    lines: dict[str, str] = field(default_factory=dict)


def caption_file(item: Item, extension: str) -> Path:
    """The caption file of ``item``: its existing one, else the image's name with ``extension``."""
    if item.caption_path is not None:
        return Path(item.caption_path)
    return Path(str(item.path.with_suffix("")) + extension)


def plan_captions(
    items: Iterable[Item],
    suggested: Mapping[str, Sequence[str]],
    mode: str,
    extension: str,
    trigger: str | None = None,
) -> CaptionPlan:
    """The caption changes that writing ``suggested`` (rel -> tags) with ``mode`` would make."""
    plan = CaptionPlan()
    owners: dict[Path, str] = {}  # caption file -> the image that claimed it (a.png and a.jpg share a.txt)
    for item in items:
        tags = suggested.get(item.rel)
        if tags is None:
            continue
        path = caption_file(item, extension)
        if path in owners:
            plan.notes.append(
                f"{item.rel}: skipped (shares its caption file {path.name} with {owners[path]})"
            )
            continue
        owners[path] = item.rel
        current = read_caption(path)
        if current.status == "not_utf8":
            plan.notes.append(f"{item.rel}: skipped (caption is not UTF-8)")
            continue
        exists = current.raw is not None
        if mode == "new-only" and current.status == "ok":
            plan.kept.append(item.rel)
            plan.lines[item.rel] = current.text
            continue
        raw = current.raw or ""
        lines = raw.splitlines(keepends=True) or [""]
        body = lines[0].rstrip("\r\n")
        ending = lines[0][len(body) :] or "\n"
        line = merge_line(current.text, tags, mode, trigger)
        if not line.strip():  # an empty caption stops Kohya's training: never write one
            plan.notes.append(f"{item.rel}: skipped (the model suggested nothing)")
            continue
        plan.lines[item.rel] = line
        if line == body:
            plan.kept.append(item.rel)
            continue
        new = (line + ending + "".join(lines[1:])).encode("utf-8")
        old = path.read_bytes() if exists else b""
        plan.changes.append(CaptionChange(path, item.rel, old, new, created=not exists))
    return plan
