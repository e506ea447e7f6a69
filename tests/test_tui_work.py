"""The review app as a place to work for an hour (Pilot): keys go where the user types, undo names what it undid,
the evidence comes first, every duplicate is in reach, tag edits have a concept scope, the plan holds only what
training accepts, the trainer's stages and failures show, form values are remembered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tui_support import make_app, make_dataset

from curator.dataset.workspace import Workspace
from curator.review.decisions import DecisionStore
from tui.screens.caption_editor import CaptionEditor
from tui.widgets.browser.item_table import ItemTable, column_widths
from tui.widgets.duplicates.panel import DuplicatesPanel, window
from tui.widgets.plan.panel import PlanPanel, problem
from tui.widgets.preview.panel import PreviewPanel
from tui.widgets.tags.panel import TagsPanel
from tui.widgets.train.panel import TrainPanel

SIZE = (140, 40)
SMALL = (80, 24)


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    for _ in range(100):
        await pilot.pause()
        app = pilot.app
        if app.state.result is not None and app.query_one(ItemTable).row_count and app.state.plan is not None:
            await app.workers.wait_for_complete()
            await pilot.pause()
            return
    raise AssertionError("scan never finished")


def _decisions(root: Path) -> dict[str, str]:
    return {rel: d.action for rel, d in DecisionStore(Workspace.for_dataset(root)).all().items()}


def _run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(coro)


# -- 1. keys and focus ---------------------------------------------------------------------------------------------
def test_typing_into_the_plan_and_train_forms_changes_no_decision(tmp_path: Path) -> None:
    _run(_typing_into_forms(tmp_path))


async def _typing_into_forms(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("d")  # one real decision: drop a.png
        before = _decisions(root)
        await pilot.press("5")
        assert (
            app.focused is not None and app.focused.id == "plan-max_train_epochs"
        )  # the first field has the focus
        await pilot.press("backspace", "backspace", "backspace", *"20", *"udkrx3")
        await pilot.press("escape")
        assert (
            app.query_one(PlanPanel).settings.max_train_epochs == 203
        )  # the digits landed in the field, letters refused
        await pilot.press("6")  # after Escape, digits switch tabs again
        assert app.focused is not None and app.focused.id == "train-out"
        await pilot.press("tab", *"/models/u/r/sd15-dukU.safetensors", "ctrl+y")
        await pilot.press("escape", "2")
        assert _decisions(root) == before
        assert not any(line.startswith(("undid", "redid")) for line in app.state.log)


def test_a_filter_change_returns_focus_to_the_table_and_a_focused_dropdown_never_decides(
    tmp_path: Path,
) -> None:
    _run(_filter_focus(tmp_path))


async def _filter_focus(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        select = app.query_one("#filter-concept")
        select.focus()
        await pilot.press("d", "k", "x")
        assert _decisions(root) == {}  # decision keys act only from the table
        select.value = "dog"  # type: ignore[attr-defined]
        await pilot.pause()
        assert app.focused is app.query_one(ItemTable)
        await pilot.press("d")
        assert _decisions(root) == {"5_dog/e.png": "drop"}


def test_home_end_and_page_keys_move_the_cursor_in_tables(tmp_path: Path) -> None:
    _run(_home_end(tmp_path))


async def _home_end(tmp_path: Path) -> None:
    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        table = app.query_one(ItemTable)
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        assert table.cursor_row == table.row_count - 1  # six rows fit on one page
        await pilot.press("4", "end")
        tags = app.query_one("#tag-freq")
        assert tags.cursor_row == tags.row_count - 1  # type: ignore[attr-defined]


def test_undo_names_what_it_undid_and_redo_applies_it_again(tmp_path: Path) -> None:
    _run(_undo_redo(tmp_path))


async def _undo_redo(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("f", "f", "D", "y")  # drop both blurry items
        await pilot.pause()
        await pilot.press("u")
        await pilot.pause()
        assert "undid: drop of 2 items (filter blurry)" in app.state.log
        assert _decisions(root) == {}
        await pilot.press("U")
        await pilot.pause()
        assert "redid: drop of 2 items (filter blurry)" in app.state.log
        assert _decisions(root) == {"10_cat/c.png": "drop", "10_cat/d.png": "drop"}
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.state.log[-1] == "nothing to redo"


# -- 2. evidence first ------------------------------------------------------------------------------------------------
def test_preview_shows_findings_with_evidence_before_the_caption_and_folds_metrics(tmp_path: Path) -> None:
    _run(_preview(tmp_path))


async def _preview(tmp_path: Path) -> None:
    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("down", "down", "down")  # d.png: blurry and a near-duplicate of c.png
        await pilot.pause()
        preview = app.query_one(PreviewPanel)
        order = [w.id for w in preview.children]
        assert (
            order.index("preview-findings") < order.index("preview-caption") < order.index("preview-metrics")
        )
        findings = str(preview.query_one("#preview-findings").render())
        assert "blurry" in findings and "vs threshold 40" in findings
        assert "keeper c.png" in findings  # the other file of the duplicate
        assert preview.query_one("#preview-metrics").collapsed  # type: ignore[attr-defined]


def test_at_80_columns_every_column_stays_and_codes_fold_into_a_count(tmp_path: Path) -> None:
    _run(_narrow(tmp_path))


async def _narrow(tmp_path: Path) -> None:
    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SMALL) as pilot:
        await _ready(pilot)
        table = app.query_one(ItemTable)
        assert all(column.width > 0 for key, column in table.columns.items() if key.value != "metric")
        assert str(table.get_cell("10_cat/d.png", "findings")) == "blurry +1"
    assert column_widths(48, metric=True)["metric"] == 8


def test_a_caption_edit_reaudits_at_once_and_marks_the_row(tmp_path: Path) -> None:
    _run(_caption_reaudit(tmp_path))


async def _caption_reaudit(tmp_path: Path) -> None:
    app = make_app(make_dataset(tmp_path / "ds"))
    long_caption = "cat, " + ", ".join(f"very long descriptive tag number {i}" for i in range(30))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        table = app.query_one(ItemTable)
        for text, expect_long in ((long_caption, True), ("cat, sitting", False)):
            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.screen, CaptionEditor)
            app.screen.query_one("TextArea").text = text  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("up")  # the cursor moved on after nothing; stay on a.png
            record = app.state.result.record("10_cat/a.png")
            assert ("caption_too_long" in [f.code for f in record.findings]) is expect_long
            assert ("caption_too_long" in str(table.get_cell("10_cat/a.png", "findings"))) is expect_long
            assert "✎" in str(table.get_cell("10_cat/a.png", "mark"))
        tokens = str(app.query_one("#preview-tokens").render())
        assert tokens.startswith("3 / 75") and "edited in review" in tokens


# -- 3. duplicates ------------------------------------------------------------------------------------------------------
def test_the_card_window_reaches_every_member() -> None:
    shown = {i for selected in range(7) for i in window(selected, 7, 3)}
    assert shown == set(range(7))
    assert list(window(6, 7, 3)) == [4, 5, 6]
    assert list(window(0, 2, 4)) == [0, 1]


def test_duplicate_cards_tell_copies_apart_and_K_picks_any_member(tmp_path: Path) -> None:
    _run(_duplicates(tmp_path))


async def _duplicates(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await _ready(pilot)
        await pilot.press("3")
        panel = app.query_one(DuplicatesPanel)
        assert panel.shown() == ["10_cat/c.png", "10_cat/d.png"]  # two cards fit in 80 columns
        label = str(panel.query_one("#dup-card-0 .dup-label").render())
        assert "64x48" in label and "KEEP (automatic)" in label
        await pilot.press("l")
        assert panel.selected == 1
        await pilot.press("K")
        await pilot.pause()
        assert _decisions(root) == {"10_cat/c.png": "drop", "10_cat/d.png": "keep"}
        assert "your choice" in str(panel.query_one("#dup-why").render())
        await pilot.press("u")
        await pilot.pause()
        assert app.state.log[-1] == "undid: keeper choice d.png"


# -- 4. tags ----------------------------------------------------------------------------------------------------------
def test_tag_edits_have_a_concept_scope_and_a_compact_diff(tmp_path: Path) -> None:
    _run(_tags(tmp_path))


async def _tags(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    (root / "10_cat" / "a.txt").write_text("cat, Blue_Eyes, sofa\n")
    (root / "10_cat" / "b.txt").write_text("cat, blue eyes\n")
    (root / "10_cat" / "c.txt").write_text("cat, (blue eyes:1.2)\n")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("4")
        panel = app.query_one(TagsPanel)
        counts = dict(panel.counts)
        assert counts.get("Blue_Eyes", counts.get("blue eyes")) == 3  # three spellings, one tag
        panel.query_one("#tag-scope").value = "dog"  # type: ignore[attr-defined]
        panel.query_one("#tag-op").value = "trigger"  # type: ignore[attr-defined]
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert dict(panel.counts) == {"dog": 2, "running": 1, "beach": 1, "screenshot": 1, "ui": 1}
        panel.query_one("#tag-first").value = "rex"  # type: ignore[attr-defined]
        await pilot.click("#tag-preview")
        await pilot.pause()
        assert sorted(c.rel for c in panel.changes) == [
            "5_dog/e.png",
            "5_dog/f.png",
        ]  # the cats are left alone
        assert all(c.added == ["rex"] and not c.removed for c in panel.changes)
        first = panel.query_one("#tag-changes").get_row_at(0)  # type: ignore[attr-defined]
        assert str(first[1]).strip() == "+rex"


# -- 5. plan and train ------------------------------------------------------------------------------------------------
def test_the_plan_tab_never_holds_values_training_refuses(tmp_path: Path) -> None:
    _run(_plan(tmp_path))


async def _plan(tmp_path: Path) -> None:
    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("5", "tab", "tab")  # to the resolution field
        assert app.focused is not None and app.focused.id == "plan-resolution"
        await pilot.press("backspace", "backspace", "backspace", *"128")
        panel = app.query_one(PlanPanel)
        assert panel.query_one("#plan-min_bucket_reso").value == "128"  # type: ignore[attr-defined]
        assert app.state.settings.resolution == 128 and app.state.settings.min_bucket_reso == 128
        assert problem(app.state.settings) is None
        await pilot.press("backspace", "backspace", "backspace", *"640")
        assert app.state.settings.min_bucket_reso == 256  # the range the user had comes back
        await pilot.press(
            "tab", "tab", "tab", "tab", *["backspace"] * 4, *"512"
        )  # max bucket under the resolution
        assert "training would refuse this" in str(panel.query_one("#plan-error").render())
        assert app.state.settings.max_bucket_reso == 1280  # the refused value never reaches the plan


def test_trainer_stages_and_failures_show_and_an_export_resets_the_status(tmp_path: Path) -> None:
    _run(_train(tmp_path))


async def _train(tmp_path: Path) -> None:
    from tui.messages import TrainExited

    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        panel = app.query_one(TrainPanel)
        panel.set_running(True, "starting the trainer …")
        panel.apply_events([{"event": "loading_model", "message": "loading model"}])
        assert str(panel.query_one("#train-status").render()) == "loading model"
        panel.apply_events([{"event": "some_new_stage", "message": "caching latents", "done": 3, "total": 9}])
        assert str(panel.query_one("#train-status").render()) == "caching latents 3/9"
        log = tmp_path / "tui-train.log"
        log.write_text("Traceback ...\nConfigError: min_bucket_reso 256 <= resolution 128\n")
        app._train_log = log
        app.post_message(TrainExited(1, False))
        await pilot.pause()
        status = str(panel.query_one("#train-status").render())
        assert "exit 1" in status and "min_bucket_reso 256" in status
        panel.exported("exported 6 images")
        assert str(panel.query_one("#train-status").render()) == "exported: ready to train"


def test_plan_values_and_the_base_model_are_remembered_in_the_workspace(tmp_path: Path) -> None:
    _run(_remembered(tmp_path))


async def _remembered(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("5", "backspace", "backspace", "backspace", *"40", "escape", "6")
        await pilot.press("tab", *"/models/base.safetensors")
        panel = app.query_one(TrainPanel)
        app.post_message(TrainPanel.ExportRequested(tmp_path / "out", "/models/base.safetensors"))
        await pilot.pause()
        await app.workers.wait_for_complete()
        del panel
    saved = json.loads(Workspace.for_dataset(root).review_prefs.read_text())
    assert saved["plan"]["max_train_epochs"] == 40 and saved["base_model"] == "/models/base.safetensors"
    again = make_app(root)
    async with again.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        assert again.state.settings.max_train_epochs == 40
        assert again.query_one("#train-base").value == "/models/base.safetensors"  # type: ignore[attr-defined]
        assert again.query_one("#train-out").value == str(tmp_path / "out")  # type: ignore[attr-defined]


def test_the_train_tab_draws_the_validation_loss_curve(tmp_path: Path) -> None:
    _run(_validation_curve(tmp_path))


async def _validation_curve(tmp_path: Path) -> None:
    from textual.widgets import Label, Sparkline

    app = make_app(make_dataset(tmp_path / "ds"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        panel = app.query_one(TrainPanel)
        panel.apply_events(
            [
                {"event": "validation", "step": 0, "loss": 0.25},
                {"event": "step", "step": 1, "loss": 0.9},
                {"event": "validation", "step": 4, "loss": 0.2},
            ]
        )
        assert panel.query_one("#train-val-loss", Sparkline).data == [0.25, 0.2]
        assert panel.query_one("#train-loss", Sparkline).data == [
            0.9
        ]  # validation does not mix into training
        assert "validation loss 0.2000" in str(panel.query_one("#train-val-label", Label).render())
        panel.exported("exported")
        assert panel.query_one("#train-val-loss", Sparkline).data == []
