"""Safe batch edits of caption tags: the only code that writes caption files, only on ``tags --apply``.

An edit set (:class:`TagEdits`) is first turned into a list of changes (:func:`plan_changes`), shown as a diff. On
apply, an undo journal with every caption's old bytes is written to the workspace *before* the first caption is
replaced; each caption is then replaced atomically (temp file + rename). A crash mid-apply therefore leaves every
caption either old or new, and ``--undo`` restores the old ones from the journal. Images are never opened for
writing. Only the first line of a caption (what training reads) is edited; other lines are kept as they are.

Example::

    changes = plan_changes(dataset.items, TagEdits(dedupe=True, add_trigger="sks"))
    print(render_diff(changes))
    journal = apply_changes(changes, Workspace.for_dataset(root))
    undo_last(Workspace.for_dataset(root))
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator import fsutil
from curator.captions.audit import contains_trigger
from curator.captions.parse import KEEP_TOKENS_SEPARATOR, normalize_tag, read_caption, split_tags
from curator.dataset.discover import Item
from curator.dataset.workspace import Workspace

JOURNAL_SCHEMA = "dreamcurate.tagjournal/1"


@dataclass(frozen=True)
class TagEdits:
    """One batch of edits, applied to each caption in this order: replace, remove, dedupe, add trigger, move to
    front. Tags are matched in normalised form (``Blue_Eyes`` matches ``blue eyes``)."""

    replace: tuple[tuple[str, str], ...] = ()  # (old, new) pairs: every tag equal to old becomes new
    remove: tuple[str, ...] = ()  # tags to drop
    dedupe: bool = False  # keep the first of repeated tags
    add_trigger: str | None = None  # put this tag first in captions that lack it
    move_to_front: tuple[str, ...] = ()  # tags moved to the front, in the order given

    def __post_init__(self) -> None:
        named = [("--replace", t) for pair in self.replace for t in pair]
        named += [("--remove", t) for t in self.remove] + [("--move-to-front", t) for t in self.move_to_front]
        if self.add_trigger is not None:
            named.append(("--add-trigger", self.add_trigger))
        for option, tag in named:
            _check_tag(option, tag)

    def is_empty(self) -> bool:
        """True when no edit is requested."""
        return not (self.replace or self.remove or self.dedupe or self.add_trigger or self.move_to_front)


def _check_tag(option: str, tag: str) -> None:
    """Refuse a tag an edit cannot write as one tag: empty (it would add a stray ``, ``), or holding a comma or a
    line break (it would become several tags)."""
    if not normalize_tag(tag):
        raise ValueError(f"{option}: empty tag {tag!r}")
    if "," in tag or "\n" in tag or "\r" in tag:
        raise ValueError(f"{option}: {tag!r} is several tags; give one tag (no comma or line break)")


@dataclass(frozen=True)
class CaptionChange:
    """One caption file's old and new bytes; ``created``: the file does not exist yet (``old`` is empty) and
    ``--undo`` removes it again."""

    path: Path
    rel: str
    old: bytes
    new: bytes
    created: bool = False


def _edit_segments(segments: list[list[str]], edits: TagEdits) -> list[list[str]]:
    replace = {normalize_tag(old): new for old, new in edits.replace}
    remove = {normalize_tag(t) for t in edits.remove}
    out = [[replace.get(normalize_tag(t), t) for t in seg] for seg in segments]
    out = [[t for t in seg if normalize_tag(t) not in remove] for seg in out]
    if edits.dedupe:
        seen: set[str] = set()
        deduped = []
        for seg in out:
            kept = []
            for t in seg:
                if normalize_tag(t) not in seen:
                    seen.add(normalize_tag(t))
                    kept.append(t)
            deduped.append(kept)
        out = deduped
    if edits.add_trigger:
        trigger = normalize_tag(edits.add_trigger)
        if not any(contains_trigger(normalize_tag(t), trigger) for seg in out for t in seg):
            out[0] = [edits.add_trigger, *out[0]]
    for wanted in reversed(edits.move_to_front):
        key = normalize_tag(wanted)
        for seg in out:
            found = [t for t in seg if normalize_tag(t) == key]
            if found:
                seg[:] = [t for t in seg if normalize_tag(t) != key]
                out[0] = [found[0], *out[0]]
                break
    return out


def edit_line(line: str, edits: TagEdits) -> str:
    """The caption line after ``edits``; the line itself (untouched) when its tags do not change.

    A ``|||`` line keeps its parts: added and moved tags go to the front of the first part."""
    parts = line.split(KEEP_TOKENS_SEPARATOR) if KEEP_TOKENS_SEPARATOR in line else [line]
    segments = [split_tags(p) for p in parts]
    edited = _edit_segments([list(s) for s in segments], edits)
    if edited == segments:
        return line
    return f" {KEEP_TOKENS_SEPARATOR} ".join(", ".join(seg) for seg in edited)


def edit_text(text: str, edits: TagEdits) -> str:
    """A whole caption file's text after ``edits``: only the first line changes; line endings are kept."""
    lines = text.splitlines(keepends=True)
    if not lines:
        lines = [""]
    first = lines[0]
    body = first.rstrip("\r\n")
    ending = first[len(body) :]
    new_body = edit_line(body, edits)
    if new_body == body:
        return text
    return new_body + ending + "".join(lines[1:])


def plan_changes(items: Iterable[Item], edits: TagEdits) -> tuple[list[CaptionChange], list[str]]:
    """The caption changes ``edits`` would make, and notes about captions skipped (missing, not UTF-8).

    Captions are never created: an image without a caption file is skipped (its note says so)."""
    changes, notes = [], []
    seen: set[Path] = set()
    for item in items:
        if item.is_reg:
            continue
        cap = read_caption(item.caption_path)
        if cap.status == "missing" or cap.raw is None:
            reason = {"not_utf8": "not UTF-8", "missing": "no caption file"}.get(
                cap.status, "larger than 64 KiB"
            )
            notes.append(f"{item.rel}: skipped ({reason})")
            continue
        assert item.caption_path is not None
        if Path(
            item.caption_path
        ).is_symlink():  # an edit would replace the link by a file: say so, never do it
            notes.append(f"{item.rel}: skipped (its caption is a symbolic link)")
            continue
        if item.caption_path in seen:
            continue
        seen.add(item.caption_path)
        new_text = edit_text(cap.raw, edits)
        if new_text != cap.raw:
            old = Path(item.caption_path).read_bytes()
            changes.append(CaptionChange(Path(item.caption_path), item.rel, old, new_text.encode("utf-8")))
    return changes, notes


def render_diff(changes: Iterable[CaptionChange]) -> str:
    """A unified diff of the changes (first lines only differ), for the dry run."""
    out = []
    for c in changes:
        old = c.old.decode("utf-8", "replace").splitlines(keepends=True)
        new = c.new.decode("utf-8", "replace").splitlines(keepends=True)
        diff = difflib.unified_diff(old, new, f"a/{c.path.name}", f"b/{c.path.name}", lineterm="")
        out.append("\n".join(line.rstrip("\n") for line in diff))
    return "\n".join(out)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Journal:
    """An undo journal: every changed caption's path, old bytes and the new bytes' digest."""

    path: Path
    created: float
    state: str  # "pending" (written before the first caption), "applied", "undone"
    entries: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "schema": JOURNAL_SCHEMA,
            "created": self.created,
            "state": self.state,
            "entries": self.entries,
        }

    def save(self) -> None:
        """Write atomically."""
        fsutil.atomic_write_text(self.path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal file."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        fields = ("created", "state", "entries")
        if not isinstance(data, dict) or data.get("schema") != JOURNAL_SCHEMA:
            raise ValueError(f"not a dreamcurate tag journal: {path}")
        if not all(k in data for k in fields):
            raise ValueError(f"not a dreamcurate tag journal: {path}")
        entry_fields = ("caption", "rel", "old", "old_sha256", "new_sha256")
        entries = data["entries"]
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in entry_fields) for e in entries
        ):
            raise ValueError(
                f"damaged tag journal (an entry lacks its caption path or old text, or is from an older version): "
                f"{path}"
            )
        return cls(Path(path), data["created"], data["state"], data["entries"])


class EditConflict(RuntimeError):
    """An edit that cannot go ahead as planned, raised before anything is written: a caption changed on disk
    since the dry run (or since the apply being undone), or its folder is not writable."""


def _dataset_root(workspace: Workspace) -> Path:
    if workspace.dataset is None:
        raise ValueError("the workspace does not name its dataset (use Workspace.for_dataset)")
    return Path(workspace.dataset).absolute()


def _relative_caption(path: Path, root: Path) -> str:
    rel = os.path.relpath(Path(path).absolute(), root)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise EditConflict(f"{path}: not inside the dataset {root}; no caption was changed")
    return Path(rel).as_posix()


def apply_changes(changes: list[CaptionChange], workspace: Workspace) -> Journal:
    """Write the changes: journal first, then each caption atomically; the journal is marked applied at the end.
    Holds the workspace lock throughout (a second writer waits, then is told who is writing).

    Raises :class:`EditConflict` before writing anything when a caption no longer holds its old bytes, its
    folder is not writable or the journal cannot be written."""
    root = _dataset_root(workspace)
    with workspace.locked():
        remove_stale_temporaries(changes)
        for c in changes:
            changed = c.path.exists() if c.created else (c.path.is_symlink() or c.path.read_bytes() != c.old)
            if changed:
                raise EditConflict(f"{c.rel}: the caption changed since it was read; run the command again")
        # an atomic write needs the folder writable (the temp file goes beside the caption): find out before the
        # journal, so a read-only dataset leaves nothing half-applied
        for folder in sorted({c.path.parent for c in changes}):
            if not os.access(folder, os.W_OK):
                raise EditConflict(f"cannot write captions in {folder} (read-only); no caption was changed")
        journal = _new_journal(changes, workspace, root)
        try:
            workspace.journal_dir.mkdir(parents=True, exist_ok=True)
            journal.save()
        except OSError as exc:
            raise EditConflict(
                f"cannot write the undo journal in {workspace.journal_dir} ({exc.strerror or exc}); "
                "no caption was changed"
            ) from exc
        _write_all(changes, journal)
        journal.state = "applied"
        journal.save()
    return journal


def _write_all(changes: list[CaptionChange], journal: Journal) -> None:
    """Replace each caption; a failure before the first write drops the journal and says nothing changed (so no
    message sends the user to ``--undo`` for nothing)."""
    for done, c in enumerate(changes):
        try:
            fsutil.atomic_write_bytes(c.path, c.new)
        except OSError as exc:
            if done:
                raise
            journal.path.unlink(missing_ok=True)
            raise EditConflict(
                f"cannot write {c.rel} ({exc.strerror or exc}); no caption was changed"
            ) from exc


def _new_journal(changes: list[CaptionChange], workspace: Workspace, root: Path) -> Journal:
    created = time.time()
    name = (
        time.strftime("%Y%m%d-%H%M%S", time.gmtime(created)) + f"-{int(created * 1e6) % 1_000_000:06d}.json"
    )
    entries = [
        {
            "caption": _relative_caption(c.path, root),
            "rel": c.rel,
            "old": base64.b64encode(c.old).decode("ascii"),
            "old_sha256": _sha(c.old),
            "new_sha256": _sha(c.new),
            "created": c.created,
        }
        for c in changes
    ]
    return Journal(workspace.journal_dir / name, created, "pending", entries)


def remove_stale_temporaries(changes: Iterable[CaptionChange]) -> list[Path]:
    """Delete the temporary files a killed edit left beside the captions about to change (``.NAME.XXXXXXXX.tmp``,
    fsutil's pattern for exactly these names; nothing else)."""
    removed = []
    for c in changes:
        prefix = fsutil.temp_prefix(c.path.name)
        for candidate in c.path.parent.glob("*.tmp"):
            middle = candidate.name[len(prefix) : -len(".tmp")]
            if candidate.name.startswith(prefix) and len(middle) == 8 and candidate.is_file():
                if not candidate.is_symlink():
                    candidate.unlink()
                    removed.append(candidate)
    return removed


def journals(workspace: Workspace) -> list[Journal]:
    """Every journal of the workspace, oldest first."""
    if not workspace.journal_dir.is_dir():
        return []
    return [Journal.load(p) for p in sorted(workspace.journal_dir.glob("*.json"))]


@dataclass
class UndoResult:
    """What ``--undo`` did: captions restored, captions already old, captions skipped because they changed."""

    journal: Path | None
    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


#: a caption's old text in a journal larger than this is not ours (captions are a line or a few)
MAX_JOURNAL_CAPTION_BYTES = 1 << 20


class JournalError(ValueError):
    """A journal entry that is not safe to restore (outside the dataset, not a caption, damaged)."""


def _entry_target(entry: dict[str, Any], root: Path, journal: Path) -> tuple[Path, bytes]:
    """The caption file an entry restores and its old bytes, after checking the entry as untrusted data: a
    relative path inside the dataset (no ``..``, no link on the way out), a caption extension, no link itself, and
    old bytes that match their recorded hash."""
    from curator.dataset.discover import check_caption_extension

    rel = entry["caption"]
    parts = rel.split("/")
    where = f"{journal.name}: entry {rel[:80]!r}"
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or "\x00" in rel
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise JournalError(f"{where} is not a path inside the dataset; nothing was restored")
    target = root / rel
    real_root = root.resolve()
    if not target.parent.resolve().is_relative_to(real_root) or target.is_symlink():
        raise JournalError(f"{where} leads outside the dataset {root}; nothing was restored")
    try:
        check_caption_extension(target.suffix)
    except ValueError as exc:
        raise JournalError(f"{where} is not a caption file; nothing was restored") from exc
    if len(entry["old"]) > MAX_JOURNAL_CAPTION_BYTES * 4 // 3 + 4:
        raise JournalError(f"{where} holds more than a caption; nothing was restored")
    try:
        old = base64.b64decode(entry["old"], validate=True)
    except ValueError as exc:
        raise JournalError(f"{where} is damaged; nothing was restored") from exc
    if _sha(old) != entry["old_sha256"]:
        raise JournalError(f"{where}: its old text does not match its hash; nothing was restored")
    return target, old


def undo_last(workspace: Workspace, force: bool = False) -> UndoResult:
    """Restore the captions of the newest journal not yet undone (an interrupted apply included).

    Every entry is checked first (the journal is data from the workspace, which may come from someone else's
    archive); one bad entry and nothing is written. A caption holding neither its old nor its new bytes was edited
    since: it is left alone (a conflict) unless ``force``. Holds the workspace lock."""
    root = _dataset_root(workspace)
    if not workspace.journal_dir.is_dir():
        return UndoResult(None)
    with workspace.locked():
        pending = [j for j in journals(workspace) if j.state != "undone"]
        if not pending:
            return UndoResult(None)
        journal = pending[-1]
        targets = [_entry_target(entry, root, journal.path) for entry in journal.entries]
        result = UndoResult(journal.path)
        for entry, (path, old) in zip(journal.entries, targets, strict=True):
            current = path.read_bytes() if path.is_file() else None
            digest = _sha(current) if current is not None else None
            if entry.get("created") is True:  # the apply made this file: undoing it is removing it
                _undo_created(path, digest, entry, force, result)
            elif digest == entry["old_sha256"]:
                result.unchanged.append(entry["rel"])
            elif digest == entry["new_sha256"] or force:
                fsutil.atomic_write_bytes(path, old)
                result.restored.append(entry["rel"])
            else:
                result.conflicts.append(entry["rel"])
        if not result.conflicts:
            journal.state = "undone"
            journal.save()
    return result


def _undo_created(
    path: Path, digest: str | None, entry: dict[str, Any], force: bool, result: UndoResult
) -> None:
    """Undo one caption the apply created: remove it while it holds what the apply wrote (or with ``force``)."""
    if digest is None:
        result.unchanged.append(entry["rel"])
    elif digest == entry["new_sha256"] or force:
        path.unlink()
        result.restored.append(entry["rel"])
    else:
        result.conflicts.append(entry["rel"])
