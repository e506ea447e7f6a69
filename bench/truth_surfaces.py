"""Every surface's numbers on one generated dataset (the cross-surface test's, at 200 epochs): plan --json, the
scan reports, the TUI backend, export's plan.json and the trainer's schedule of the exported train.toml. They must
be one row repeated; the issue's "before" table had five different totals.

    python bench/truth_surfaces.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from test_truth_surfaces import _cli, _headline, _review, make_dataset  # noqa: E402

from curator.commands.options import policy_from, scan_settings  # noqa: E402
from curator.settings.config import TrainConfig  # noqa: E402
from curator.settings.options import settings_from_options  # noqa: E402

SETTINGS = {
    "train_batch_size": 2,
    "max_train_epochs": 200,
    "text_encoder_sensitivity": 0.4,
    "resolution": 128,
    "min_bucket_reso": 64,
    "max_bucket_reso": 256,
}


def main() -> None:
    from trainer.data import build_training_data
    from tui.backend import Backend

    work = Path(tempfile.mkdtemp(prefix="truth-surfaces-"))
    train, reg = make_dataset(work)
    _review(train)
    options = ["--reg", str(reg), "--caption-extension", ".caption", "--target-size", "5", "--no-progress"]
    options += [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    _cli("scan", str(train), *options)
    rows = {"plan --json": _headline(json.loads(_cli("plan", str(train), *options, "--json", "-")))}
    _cli("scan", str(train), *options, "--json", str(work / "r.json"), "--html", str(work / "r.html"))
    rows["scan --json/--html"] = _headline(json.loads((work / "r.json").read_text())["plan"])
    kw = {"reg_root": reg, "caption_extension": ".caption", "target_size": 5, "no_progress": True}
    settings = settings_from_options(SETTINGS)
    backend = Backend(train, scan_settings(kw, settings), policy_from(kw))
    result = backend.scan(lambda done, total: None, lambda: False)
    rows["TUI backend"] = _headline(backend.plan(result, settings).values)
    out = work / "out"
    _cli("export", str(train), str(out), *options)
    rows["export plan.json"] = _headline(json.loads((out / "plan.json").read_text()))
    schedule = build_training_data(
        TrainConfig.from_dict(tomllib.loads((out / "train.toml").read_text()))
    ).schedule
    rows["trainer (export)"] = {
        "total_steps": schedule.total_steps,
        "steps_per_epoch": schedule.steps_per_epoch,
        "te_stop": schedule.te_stop_step,
        "kept": "-",
    }
    for name, h in rows.items():
        print(
            f"{name:20s} total {h['total_steps']:6d}  per epoch {h['steps_per_epoch']:4d}  "
            f"TE stop {h['te_stop']}  kept {h['kept']}"
        )
    totals = {h["total_steps"] for h in rows.values()}
    print("one truth" if len(totals) == 1 else f"SURFACES DISAGREE: {sorted(totals)}")


if __name__ == "__main__":
    main()
