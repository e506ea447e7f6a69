"""The plan handed to the report and train.toml: the planner's arithmetic over what the curation keeps."""

from __future__ import annotations

import json
from pathlib import Path

import tomllib

from curator.dataset.workspace import Workspace
from curator.export.folder import ExportOptions, export_dataset
from curator.plan.build import PlanOptions
from curator.review.curation import build_curation, plan_curation
from curator.review.decisions import DecisionStore
from curator.settings.config import TrainConfig
from tests._report_fixtures import build_result


def test_plan_of_the_kept_items_and_its_stop_step(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (3, ["a.png", "b.png", "c.png"]), "dog": (2, ["x.png"])})
    store = DecisionStore(Workspace.for_dataset(result.dataset.root))
    store.set("3_cat/c.png", "drop", "review")
    curation = build_curation(result, store)
    settings = TrainConfig(train_batch_size=2, max_train_epochs=10, text_encoder_sensitivity=0.5)
    plan = plan_curation(curation, PlanOptions(settings))
    # 64x48 images share one bucket: 2 cats x 3 repeats + 1 dog x 2 repeats = 8 per epoch, batch 2 -> 4 steps
    assert plan.steps_per_epoch == 4 and plan.total_steps == 40 and plan.stop_text_encoder_training == 20
    assert plan.curation is not None and plan.curation["left_out"] == {"review": 1}
    steps = plan_curation(curation, PlanOptions(TrainConfig(max_train_epochs=0, max_train_steps=7)))
    assert steps.total_steps == 7


def test_train_toml_carries_the_settings_the_plan_used(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (3, ["a.png", "b.png"])})
    curation = build_curation(result)
    settings = TrainConfig(max_train_epochs=5, text_encoder_sensitivity=0.4, train_batch_size=2)
    plan = plan_curation(curation, PlanOptions(settings)).to_json()
    export_dataset(curation, tmp_path / "out", ExportOptions(settings=settings), plan)
    config = tomllib.loads((tmp_path / "out" / "train.toml").read_text())
    dataset = tomllib.loads((tmp_path / "out" / "dataset.toml").read_text())
    assert config["max_train_epochs"] == 5 and config["text_encoder_sensitivity"] == 0.4
    assert config["train_batch_size"] == dataset["datasets"][0]["batch_size"] == 2
    assert config["max_bucket_reso"] == dataset["datasets"][0]["max_bucket_reso"] == 1280
    saved = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert saved["stop_text_encoder_training"] == round(0.4 * 5 * 3) == plan["stop_text_encoder_training"]
