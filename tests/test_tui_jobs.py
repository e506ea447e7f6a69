"""Export, tag batch edits and training from the app: export honours the decisions made with keys, batch edits
preview before they write, the trainer runs as a subprocess whose events reach the panel, and cancel stops it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from tui_support import FakeScanBackend, make_app, make_dataset

from curator.scan.results import ScanSettings
from curator.settings.config import TrainConfig
from tui.app import create_app
from tui.jobs import EventTail
from tui.screens.confirm import ConfirmScreen
from tui.widgets.browser.item_table import ItemTable
from tui.widgets.train.panel import TrainPanel

SIZE = (140, 40)


async def _ready(pilot) -> None:  # type: ignore[no-untyped-def]
    for _ in range(50):
        await pilot.pause()
        if pilot.app.state.result is not None and pilot.app.query_one(ItemTable).row_count:
            return
    raise AssertionError("scan never finished")


async def _wait_for(pilot, condition, what: str, tries: int = 200) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        await pilot.pause(0.05)
        if condition():
            return
    raise AssertionError(f"timed out waiting for {what}")


def test_export_from_the_app_honours_key_decisions(tmp_path: Path) -> None:
    asyncio.run(_export_honours_decisions(tmp_path))


async def _export_honours_decisions(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    before = _user_files(root)
    out = tmp_path / "curated"
    app = make_app(root, export_dir=out)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("d")  # drop a.png (no findings: only the decision removes it)
        await pilot.press("6")
        await pilot.click("#train-export")
        await _wait_for(pilot, lambda: app.export_config is not None, "the export")
        manifest = json.loads((out / "manifest.json").read_text())
        assert not (out / "img" / "10_cat" / "a.png").exists()
        assert (out / "img" / "10_cat" / "b.png").exists()
        assert "a.png" in json.dumps(manifest) and app.export_config == out / "train.toml"
        assert not (out / "img" / "5_dog" / "f.png").exists()  # the screenshot error is dropped by the policy
        # exporting again asks before replacing
        await pilot.click("#train-export")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
    assert _user_files(root) == before  # review and export never change the user's images or captions


def _user_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def test_tag_batch_edit_previews_then_applies_and_undoes(tmp_path: Path) -> None:
    asyncio.run(_tag_batch_edit(tmp_path))


async def _tag_batch_edit(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds")
    caption = root / "10_cat" / "a.txt"
    before = caption.read_text()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("4")
        panel = app.query_one("TagsPanel")
        panel.query_one("#tag-op").value = "trigger"
        await pilot.pause()
        panel.query_one("#tag-first").value = "sks"
        await pilot.click("#tag-preview")
        await pilot.pause()
        assert panel.query_one("#tag-changes").row_count == 6  # every training caption gains the trigger
        assert caption.read_text() == before  # preview writes nothing
        await pilot.click("#tag-apply")
        await pilot.pause()
        assert caption.read_text().startswith("sks, cat, sitting")
        assert ("sks", 6) in app.backend.tag_counts(app.state.result)
        await pilot.click("#tag-undo")
        await pilot.pause()
        assert caption.read_text() == before


FAKE_TRAINER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    events = Path(sys.argv[1])
    steps = int(sys.argv[2])
    events.parent.mkdir(parents=True, exist_ok=True)
    with events.open("a") as f:
        def emit(**e):
            f.write(json.dumps(e) + "\\n"); f.flush()
        emit(event="start", total_steps=steps)
        for step in range(1, steps + 1):
            emit(event="step", step=step, epoch=1, loss=1.0 / step, eta_s=steps - step)
            time.sleep(0.02)
        emit(event="sample", step=steps, path=sys.argv[3])
        emit(event="end", step=steps, path="model.safetensors")
    """
)


class FakeTrainerBackend(FakeScanBackend):
    """Runs a tiny fake trainer script instead of ``python -m trainer``."""

    steps = 10

    def train_command(self, config: Path) -> list[str]:
        script = config.parent / "fake_trainer.py"
        script.write_text(FAKE_TRAINER)
        sample = str(self.dataset_root / "10_cat" / "a.png")
        return [sys.executable, str(script), str(self.events_path(config)), str(self.steps), sample]

    def events_path(self, config: Path) -> Path:
        return config.parent / "model" / "events.jsonl"


def _train_app(tmp_path: Path, steps: int):  # type: ignore[no-untyped-def]
    root = make_dataset(tmp_path / "ds")
    backend = FakeTrainerBackend(root, ScanSettings(workers=1))
    backend.steps = steps
    app = create_app(root, backend.settings, backend=backend)
    config = tmp_path / "out" / "train.toml"
    config.parent.mkdir()
    config.write_text("")
    app.export_config = config
    return app


def test_training_events_reach_progress_sparkline_and_sample(tmp_path: Path) -> None:
    asyncio.run(_training_events(tmp_path))


async def _training_events(tmp_path: Path) -> None:
    app = _train_app(tmp_path, steps=10)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("6")
        panel = app.query_one(TrainPanel)
        panel.exported("exported (pretend)")  # as after an export: Train is enabled
        await pilot.click("#train-start")
        await _wait_for(
            pilot, lambda: not panel.state.running and panel.state.status != "idle", "the trainer"
        )
        assert panel.state.status == "finished"
        assert panel.state.step == 10 and panel.state.total == 10
        assert panel.state.losses[:2] == [1.0, 0.5] and len(panel.state.losses) == 10
        assert panel.state.last_sample is not None and panel.state.last_sample.name == "a.png"
        assert app.query_one("#train-sample").image is not None  # decoded by the worker, shown by the panel
        assert list(app.query_one("#train-loss").data) == panel.state.losses


def test_cancel_terminates_the_trainer(tmp_path: Path) -> None:
    asyncio.run(_cancel(tmp_path))


async def _cancel(tmp_path: Path) -> None:
    app = _train_app(tmp_path, steps=10_000)  # would run for minutes
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("6")
        panel = app.query_one(TrainPanel)
        panel.exported("exported (pretend)")  # as after an export: Train is enabled
        await pilot.click("#train-start")
        await _wait_for(pilot, lambda: panel.state.step >= 2, "the first steps")
        await pilot.click("#train-cancel")
        await _wait_for(pilot, lambda: not panel.state.running, "the cancel")
        assert panel.state.status == "cancelled"
        assert panel.state.step < 10_000


def test_event_tail_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.poll() == []  # no file yet
    path.write_text('{"event": "start"}\n{"event": "st')
    assert tail.poll() == [{"event": "start"}]
    with path.open("a") as handle:
        handle.write('ep", "step": 1}\nnot json\n')
    assert tail.poll() == [{"event": "step", "step": 1}]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DREAMCURATE_TUI_TRAIN"),
    reason="40-70 s on 2 cores (torch start-up in the subprocess); set DREAMCURATE_TUI_TRAIN=1 to run it",
)
def test_export_then_the_real_trainer_runs_to_the_end(tmp_path: Path) -> None:
    """Export from the app, then ``python -m trainer OUT/train.toml`` on the tiny model, followed to its end."""
    pytest.importorskip("torch")
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    root = tmp_path / "ds"
    for index, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        (root / "1_cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (96, 96), colour).save(root / "1_cat" / f"{index}.png")
        (root / "1_cat" / f"{index}.txt").write_text("sks cat, sitting")
    settings = ScanSettings(
        workers=1, resolution=96, min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=32
    )
    training = TrainConfig(
        max_train_epochs=1, resolution=96, min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=32
    )
    app = create_app(root, settings, export_dir=tmp_path / "out", training=training)
    asyncio.run(_real_training(app, model))
    assert (tmp_path / "out" / "model" / "events.jsonl").is_file()


async def _real_training(app, model: Path) -> None:  # type: ignore[no-untyped-def]
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("6")
        app.query_one("#train-base").value = str(model)
        await pilot.click("#train-export")
        await _wait_for(pilot, lambda: app.export_config is not None, "the export")
        await pilot.click("#train-start")
        panel = app.query_one(TrainPanel)
        await _wait_for(
            pilot, lambda: not panel.state.running and panel.state.status != "idle", "training", 2400
        )
        log = (app.export_config.parent / "model" / "tui-train.log").read_text()
        assert panel.state.status == "finished", log
        assert panel.state.total == 2 and panel.state.step == 2 and len(panel.state.losses) == 2
