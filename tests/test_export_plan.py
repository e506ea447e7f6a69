"""The plan handed to the report and train.toml: the planner's arithmetic over the kept items."""

from __future__ import annotations

from pathlib import Path

import tomllib

from curator.export.folder import ExportOptions, export_dataset
from curator.plan.handoff import PlanInputs, basic_plan, full_plan, plan_json
from tests._report_fixtures import build_result


def test_plan_of_the_kept_items_and_its_stop_step(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (3, ["a.png", "b.png", "c.png"]), "dog": (2, ["x.png"])})
    inputs = PlanInputs(batch=2, epochs=10, sensitivity=0.5)
    kept = {"3_cat/a.png", "3_cat/b.png", "2_dog/x.png"}
    full = full_plan(result, kept, inputs)
    basic = basic_plan(result, kept, inputs)
    # 64x48 images share one bucket: 2 cats x 3 repeats + 1 dog x 2 repeats = 8 per epoch, batch 2 -> 4 steps
    assert full["steps_per_epoch"] == basic["steps_per_epoch"] == 4
    assert full["total_steps"] == basic["total_steps"] == 40
    assert full["stop_text_encoder_training"] == basic["stop_text_encoder_training"] == 20
    assert plan_json(result, kept, PlanInputs(epochs=None, steps=7))["total_steps"] == 7


def test_train_toml_carries_the_plan(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (3, ["a.png", "b.png"])})
    plan = plan_json(result, None, PlanInputs(epochs=5, sensitivity=0.4))
    export_dataset(result, tmp_path / "out", ExportOptions(plan=plan))
    config = tomllib.loads((tmp_path / "out" / "train.toml").read_text())
    assert config["max_train_epochs"] == 5 and config["stop_text_encoder_training"] == round(0.4 * 5 * 6)
