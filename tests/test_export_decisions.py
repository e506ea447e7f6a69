"""The review decision store: keep / drop, captions, keepers, batches and undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.dataset.workspace import Workspace
from curator.review.decisions import DecisionStore, cluster_key


def _store(tmp_path: Path) -> DecisionStore:
    return DecisionStore(Workspace.for_dataset(tmp_path / "data"))


def test_reading_an_absent_store_creates_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.all() == {} and store.captions() == {} and store.undo() == []
    assert not (tmp_path / "data").exists()


def test_set_get_and_latest_wins(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set("10_cat/a.png", "drop", "blurry")
    store.set("10_cat/b.png", "keep", "")
    store.set("10_cat/a.png", "keep", "looks fine")
    got = store.get("10_cat/a.png")
    assert got is not None and got.action == "keep" and got.reason == "looks fine" and got.ts > 0
    assert set(store.all()) == {"10_cat/a.png", "10_cat/b.png"}
    with pytest.raises(ValueError):
        store.set("10_cat/a.png", "delete")


def test_undo_restores_the_previous_decision(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set("a.png", "drop", "blurry")
    store.set("a.png", "keep")
    undone = store.undo()
    assert [c.value for c in undone] == ["keep"]
    assert store.get("a.png").action == "drop"  # type: ignore[union-attr]
    store.undo()
    assert store.get("a.png") is None
    assert store.undo() == []


def test_batch_is_undone_as_one(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set("keep.png", "keep")
    with store.batch():
        for name in ("a.png", "b.png", "c.png"):
            store.set(name, "drop", "screenshot")
    assert len(store.all()) == 4
    assert len(store.undo()) == 3
    assert set(store.all()) == {"keep.png"}


def test_captions_and_keepers_and_clear(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set_caption("a.png", "cat, <b>sofa</b>")
    key = cluster_key(["b.png", "a.png"])
    assert key == cluster_key(["a.png", "b.png", "a.png"])
    store.set_keeper(key, "b.png")
    store.set("a.png", "drop")
    store.clear("a.png")
    assert store.caption("a.png") == "cat, <b>sofa</b>" and store.caption("b.png") is None
    assert store.keeper(key) == "b.png"
    assert store.get("a.png") is None
    store.undo()  # the clear
    assert store.get("a.png").action == "drop"  # type: ignore[union-attr]


def test_redo_reapplies_the_last_undone_batch_until_a_new_change(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.sqlite")
    store.set("a.png", "drop", "blurry")
    with store.batch():
        store.set("b.png", "drop", "filter blurry")
        store.set("c.png", "drop", "filter blurry")
    store.undo()
    store.undo()
    assert store.all() == {}
    assert [c.key for c in store.redo()] == ["a.png"]  # the most recently undone comes back first
    assert sorted(c.key for c in store.redo()) == ["b.png", "c.png"]
    assert store.redo() == []
    store.undo()
    store.set("d.png", "keep")  # a new change ends the redo chain
    assert store.redo() == []
    assert sorted(store.all()) == ["a.png", "d.png"]
