"""The review app driven through its factory with Pilot key presses: decisions, filters, undo, caption edits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tui_support import make_app, make_dataset

from curator.dataset.workspace import Workspace
from curator.review.decisions import DecisionStore
from tui.screens.caption_editor import CaptionEditor
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.widgets.browser.item_table import ItemTable

SIZE = (140, 40)


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until the scan worker delivered its result and the table is filled."""
    for _ in range(50):
        await pilot.pause()
        if pilot.app.state.result is not None and pilot.app.query_one(ItemTable).row_count:
            return
    raise AssertionError("scan never finished")


def _store(root: Path) -> DecisionStore:
    return DecisionStore(Workspace.for_dataset(root))


def test_keep_drop_keys_write_the_store_and_undo_reverts(tmp_path: Path) -> None:
    asyncio.run(_test_keep_drop_keys_write_the_store_and_undo_reverts(tmp_path))


async def _test_keep_drop_keys_write_the_store_and_undo_reverts(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("d", "k")  # drop a.png, keep b.png (the cursor moves down after each)
        await pilot.pause()
        # the dropped image left the plan: b, c x10 + e x5 (d is c's duplicate, f a screenshot error: export drops them)
        assert dict(app.state.plan.lines)["steps per epoch"] == "25"
        assert {rel: d.action for rel, d in _store(root).all().items()} == {
            "10_cat/a.png": "drop",
            "10_cat/b.png": "keep",
        }
        table = app.query_one(ItemTable)
        assert str(table.get_cell("10_cat/a.png", "decision")) == "DROP"
        await pilot.press("u")
        await pilot.pause()
        assert {rel: d.action for rel, d in _store(root).all().items()} == {"10_cat/a.png": "drop"}
        assert str(table.get_cell("10_cat/b.png", "decision")) == ""
        assert app.state.decisions == {"10_cat/a.png": "drop"}


def test_filters_by_code_and_concept_and_sorts_by_metric(tmp_path: Path) -> None:
    asyncio.run(_test_filters_by_code_and_concept_and_sorts_by_metric(tmp_path))


async def _test_filters_by_code_and_concept_and_sorts_by_metric(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        table = app.query_one(ItemTable)
        await pilot.press("f")  # any finding
        assert table.shown_rels() == ["10_cat/c.png", "10_cat/d.png", "5_dog/f.png"]
        await pilot.press("f")  # blurry
        assert table.shown_rels() == ["10_cat/c.png", "10_cat/d.png"]
        await pilot.press("f", "f", "f")  # near_duplicate, screenshot, all again
        assert table.row_count == 6
        await pilot.press("c", "c")  # concept dog
        assert table.shown_rels() == ["5_dog/e.png", "5_dog/f.png"]
        await pilot.press("c")  # all concepts
        await pilot.press("s", "s", "s")  # name -> severity -> jpeg_quality -> laplacian_var
        assert app.query_one("BrowserPanel").view.sort_key == "laplacian_var"
        assert table.shown_rels()[0] == "5_dog/f.png"  # lowest laplacian variance first
        await pilot.press("S")
        assert table.shown_rels()[0] == "10_cat/a.png"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_bulk_drop_by_finding_code_asks_and_undoes_as_one_step(tmp_path: Path) -> None:
    asyncio.run(_test_bulk_drop_by_finding_code_asks_and_undoes_as_one_step(tmp_path))


async def _test_bulk_drop_by_finding_code_asks_and_undoes_as_one_step(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("f", "f", "D")  # blurry filter, bulk drop
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert sorted(_store(root).all()) == ["10_cat/c.png", "10_cat/d.png"]
        assert {d.reason for d in _store(root).all().values()} == {"filter blurry"}
        await pilot.press("u")
        await pilot.pause()
        assert _store(root).all() == {}


def test_caption_edit_is_saved_only_on_save_and_never_touches_the_file(tmp_path: Path) -> None:
    asyncio.run(_test_caption_edit_is_saved_only_on_save_and_never_touches_the_file(tmp_path))


async def _test_caption_edit_is_saved_only_on_save_and_never_touches_the_file(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    caption_file = root / "10_cat" / "a.txt"
    before = caption_file.read_bytes()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, CaptionEditor)
        await pilot.press("end", *"x, fluffy")
        await pilot.pause()
        assert "tokens" in str(app.screen.query_one("#editor-tokens").render())
        assert _store(root).caption("10_cat/a.png") is None  # typing writes nothing
        await pilot.press("escape")  # discard
        await pilot.pause()
        assert _store(root).caption("10_cat/a.png") is None
        await pilot.press("e", "end", *" tabby", "ctrl+s")
        await pilot.pause()
        assert _store(root).caption("10_cat/a.png") == "cat, sitting, sofa, red tabby"
        assert caption_file.read_bytes() == before  # the user's caption stays as it was
        assert "red tabby" in str(app.query_one("#preview-caption").render())


def test_duplicate_keeper_choice_keeps_one_and_drops_the_rest(tmp_path: Path) -> None:
    asyncio.run(_test_duplicate_keeper_choice_keeps_one_and_drops_the_rest(tmp_path))


async def _test_duplicate_keeper_choice_keeps_one_and_drops_the_rest(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("3")
        await pilot.pause()
        await pilot.press("l", "K")  # select d.png, make it the keeper
        await pilot.pause()
        store = _store(root)
        assert {rel: d.action for rel, d in store.all().items()} == {
            "10_cat/c.png": "drop",
            "10_cat/d.png": "keep",
        }
        assert list(store.keepers().values()) == ["10_cat/d.png"]
        await pilot.press("u")
        await pilot.pause()
        assert store.all() == {} and store.keepers() == {}


def test_plan_panel_recomputes_as_the_user_types(tmp_path: Path) -> None:
    asyncio.run(_test_plan_panel_recomputes_as_the_user_types(tmp_path))


async def _test_plan_panel_recomputes_as_the_user_types(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        assert app.state.plan is not None
        lines = dict(app.state.plan.lines)
        # what export keeps: 3 cats x10 + 1 dog x5 = 35 images a epoch in one bucket, batch 1, 200 epochs
        # (d is c's near duplicate and f has a screenshot error: the curation leaves them out)
        assert lines["steps per epoch"] == "35" and lines["total steps"] == "7000"
        await pilot.press("5")
        await pilot.click("#plan-max_train_epochs")
        await pilot.press("end", "backspace", "backspace", "backspace", "1", "0")
        await pilot.pause()
        assert dict(app.state.plan.lines)["total steps"] == "350"
        assert app.state.settings.max_train_epochs == 10
        await pilot.press("2")  # typed into the input, not a tab switch
        assert app.state.settings.max_train_epochs == 102


def test_mouse_selects_a_row_and_keys_act_on_it(tmp_path: Path) -> None:
    asyncio.run(_mouse(tmp_path))


async def _mouse(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.click(ItemTable, offset=(6, 3))  # header on line 0, so line 3 is the third item
        await pilot.pause()
        assert app.query_one(ItemTable).current_rel() == "10_cat/c.png"
        assert app.query_one("PreviewPanel").rel == "10_cat/c.png"
        await pilot.press("d")
        await pilot.pause()
        assert [rel for rel in _store(root).all()] == ["10_cat/c.png"]
        await pilot.click("#tabs Tab#--content-tab-overview")
        await pilot.pause()
        assert app.query_one("TabbedContent").active == "overview"


def test_review_module_is_light() -> None:
    """``tui.cli`` (what ``dreamcurate review --help`` imports) does not import textual or torch."""
    code = (
        "import json, sys, tui.cli\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_image', 'torch'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
