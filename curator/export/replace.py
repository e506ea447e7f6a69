"""How an export tree is put in place of ``OUT`` without losing anything that is not ours.

A new export is built in a hidden folder beside ``OUT`` (``.OUT.tmp-XXXX``) that carries our marker file
(:data:`MARKER`) from its first moment: the marker names the ``OUT`` it is for, the process building it, a token,
and (once complete) every file the export wrote. Replacing ``OUT`` then goes:

1. a swap journal beside ``OUT`` (``.OUT.dreamcurate-swap.json``) names the new tree, the set-aside name of the old
   one and every entry of the old ``OUT`` that an export did not write (a trained model, samples, the user's own
   files); it is written before anything moves;
2. the new tree takes ``OUT``'s place: one ``renameat2(RENAME_EXCHANGE)`` where the kernel and file system offer
   it (``OUT`` never disappears), else two renames;
3. the entries that are not ours move from the old tree into the new ``OUT``; the old tree is deleted; the journal
   goes last.

A kill at any point is undone or finished by :func:`recover` at the start of the next export: the journal and the
token say which tree is where. Nothing is ever deleted by its name alone: only a tree named by our journal, or a
temporary carrying our marker whose process is gone.

Example::

    tmp = new_tree(out)
    ...  # write the export into tmp
    finish_tree(tmp)
    kept = swap_into_place(tmp, out)   # entries of the old OUT that stayed (["model"])
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from curator.fsutil import atomic_write_text

MARKER = ".dreamcurate-export.json"
MARKER_SCHEMA = "dreamcurate.exporttree/1"
JOURNAL_SCHEMA = "dreamcurate.exportswap/1"
#: what an export wrote before the marker existed (an OUT with only our manifest.json to show it is ours)
LEGACY_ENTRIES = ("manifest.json", "dataset.toml", "train.toml", "img", "reg", "report.html")


class ReplaceError(Exception):
    """``OUT`` cannot be replaced without losing something; the message names it."""


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _journal_path(out: Path) -> Path:
    return out.parent / f".{out.name}.dreamcurate-swap.json"


def _read_marker(tree: Path) -> dict[str, Any] | None:
    """Our marker of ``tree`` (a real folder, not a link), or None when it has none or it is not ours."""
    if tree.is_symlink() or not tree.is_dir():
        return None
    try:
        data = json.loads((tree / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != MARKER_SCHEMA:
        return None
    return data


def _write_marker(tree: Path, data: dict[str, Any]) -> None:
    atomic_write_text(
        tree / MARKER, json.dumps(data, indent=1, ensure_ascii=False) + "\n", errors="backslashreplace"
    )


def new_tree(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` for the export to be written into, with our marker in it and the
    permissions the user's umask gives a new folder (``mkdtemp`` alone would make it owner-only)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_current_umask())
    marker = {"schema": MARKER_SCHEMA, "out": out.name, "pid": os.getpid(), "token": secrets.token_hex(8)}
    _write_marker(tmp, {**marker, "complete": False, "files": []})
    return tmp


def finish_tree(tmp: Path) -> None:
    """Record in the marker every file the export wrote into ``tmp`` (what a later ``--force`` may replace)."""
    marker = _read_marker(tmp)
    if marker is None:
        raise ReplaceError(f"{tmp}: the export's marker file is missing")
    files = sorted(
        p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if not p.is_dir() and p.name != MARKER
    )
    umask = _current_umask()
    for folder in [p for p in tmp.rglob("*") if p.is_dir() and not p.is_symlink()]:
        os.chmod(folder, 0o777 & ~umask)
    _write_marker(tmp, {**marker, "complete": True, "files": files})


def _ours(tree: Path) -> set[str] | None:
    """The files (relative, posix) of ``tree`` that an export wrote; None when ``tree`` is not an export."""
    marker = _read_marker(tree)
    if marker is not None:
        files = marker.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            return None
        return {*files, MARKER}
    try:
        manifest = json.loads((tree / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(manifest, dict) and str(manifest.get("schema", "")).startswith("dreamcurate.export/")):
        return None
    found: set[str] = set()
    for name in LEGACY_ENTRIES:
        entry = tree / name
        if entry.is_dir() and not entry.is_symlink():
            found |= {p.relative_to(tree).as_posix() for p in entry.rglob("*") if not p.is_dir()}
        elif entry.is_file():
            found.add(name)
    return found


def is_replaceable(out: Path) -> bool:
    """True for an empty folder or one an earlier export wrote (our marker, or an older export's manifest)."""
    return not any(out.iterdir()) or _ours(out) is not None


def foreign_entries(out: Path) -> list[str]:
    """The entries of ``out`` (relative paths, biggest units first: a whole folder when none of it is ours) that an
    export did not write. Raises :class:`ReplaceError` when ``out`` is not an export at all."""
    ours = _ours(out) if any(out.iterdir()) else set()
    if ours is None:
        raise ReplaceError(f"{out} is not an earlier dreamcurate export")
    prefixes = {"/".join(f.split("/")[:i]) for f in ours for i in range(1, f.count("/") + 1)}
    found: list[str] = []

    def walk(folder: Path, rel: str) -> None:
        for entry in sorted(folder.iterdir()):
            name = f"{rel}{entry.name}"
            if entry.is_dir() and not entry.is_symlink() and name in prefixes:
                walk(entry, name + "/")
            elif name not in ours:
                found.append(name)

    walk(out, "")
    return found


def check_collisions(tmp: Path, keep: list[str]) -> None:
    """Refuse before anything moves when an entry of the old ``OUT`` that is not ours would land on a path the new
    export wrote."""
    for rel in keep:
        target = tmp / rel
        parent = target.parent
        while parent != tmp and not parent.exists():
            parent = parent.parent
        if os.path.lexists(target) or not parent.is_dir():
            raise ReplaceError(
                f"{rel} in the old export was not written by dreamcurate and the new export writes the same path; "
                "move it out of the way first"
            )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with ``renameat2(RENAME_EXCHANGE)``; False where the system cannot."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def _move_kept(old: Path, out: Path, keep: list[str]) -> list[str]:
    """Move each kept entry from the old tree into ``out`` (skipping what already moved); returns those still in
    ``old`` (they could not move: the old tree must then stay)."""
    left = []
    for rel in keep:
        source, target = old / rel, out / rel
        if not os.path.lexists(source):
            continue
        if os.path.lexists(target):
            left.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    return left


def _delete_tree(tree: Path) -> None:
    shutil.rmtree(tree, ignore_errors=True)


def swap_into_place(tmp: Path, out: Path, keep: list[str]) -> None:
    """Put the finished tree ``tmp`` in place of ``out`` and move ``keep`` (entries of the old ``out`` that are not
    ours) into it; see the module docstring for why a kill at any point loses nothing."""
    token = (_read_marker(tmp) or {}).get("token")
    old = out.parent / f".{out.name}.old-{secrets.token_hex(6)}"
    journal = _journal_path(out)
    data = {
        "schema": JOURNAL_SCHEMA,
        "out": out.name,
        "token": token,
        "new": tmp.name,
        "old": old.name,
        "keep": keep,
    }
    atomic_write_text(
        journal, json.dumps(data, indent=1, ensure_ascii=False) + "\n", errors="backslashreplace"
    )
    if not os.path.lexists(out):
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        old = tmp  # the old tree now sits where the new one was built
    else:
        os.rename(out, old)
        os.rename(tmp, out)
    _finish(out, old, keep, journal)


def _finish(out: Path, old: Path, keep: list[str], journal: Path) -> None:
    if old.is_dir() and not old.is_symlink():
        left = _move_kept(old, out, keep)
        if left:
            raise ReplaceError(
                f"could not move {', '.join(left)} into the new export; they are still in {old}"
            )
        _delete_tree(old)
    journal.unlink(missing_ok=True)


def _load_journal(out: Path) -> dict[str, Any] | None:
    path = _journal_path(out)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    prefix = f".{out.name}."
    valid = (
        isinstance(data, dict)
        and data.get("schema") == JOURNAL_SCHEMA
        and data.get("out") == out.name
        and all(
            isinstance(data.get(k), str) and data[k].startswith(prefix) and "/" not in data[k]
            for k in ("new", "old")
        )
        and isinstance(data.get("keep"), list)
        and all(
            isinstance(k, str) and ".." not in k.split("/") and not k.startswith("/") for k in data["keep"]
        )
    )
    if not valid:
        raise ReplaceError(f"{path} is not a journal dreamcurate wrote; look at it and remove it yourself")
    assert isinstance(data, dict)
    return data


def recover(out: Path) -> str | None:
    """Finish or undo a swap a killed export left (its journal beside ``out``); returns what was done, or None."""
    data = _load_journal(out)
    if data is None:
        return None
    new, old = out.parent / data["new"], out.parent / data["old"]
    token = data.get("token")

    def holds_new(tree: Path) -> bool:
        marker = _read_marker(tree)
        return marker is not None and marker.get("token") == token

    if holds_new(out):  # the new tree is in place: finish moving the user's entries, drop the old tree
        aside = new if new.is_dir() and not holds_new(new) else old
        _finish(out, aside, data["keep"], _journal_path(out))
        return "finished the interrupted export"
    if not os.path.lexists(out) and old.is_dir():  # killed between the two renames: the old OUT goes back
        os.rename(old, out)
    if holds_new(new):
        _delete_tree(new)
    _journal_path(out).unlink(missing_ok=True)
    return "undid the interrupted export; the previous one is in place"


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(out: Path, protected: list[Path]) -> list[Path]:
    """Delete the temporaries killed exports of ``out`` left beside it: only folders that carry our marker for this
    ``out`` and whose process is gone; never a folder in ``protected`` (the dataset), whatever its name."""
    removed = []
    shielded = {p.resolve() for p in protected}
    for candidate in out.parent.glob(f".{out.name}.tmp-*"):
        marker = _read_marker(candidate)
        if marker is None or marker.get("out") != out.name or candidate.resolve() in shielded:
            continue
        if marker.get("pid") != os.getpid() and _process_alive(marker.get("pid")):
            continue  # another export of the same OUT is still writing it
        _delete_tree(candidate)
        removed.append(candidate)
    return removed
