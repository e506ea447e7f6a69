"""Killed with SIGKILL mid-run and resumed: training ends at the planned step count and no half-written checkpoint
is left. Runs ``python -m trainer`` in subprocesses, as ``accelerate launch`` would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainer_testkit import SQUARE, fast_config, make_images

from curator.settings.config import write_config
from trainer.events import read_events

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # two test workers share two cores
    return env


def _wait_for_checkpoint(events: Path, proc: subprocess.Popen, min_step: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        if events.exists():
            saved = [e["step"] for e in read_events(events) if e["event"] == "checkpoint"]
            if saved and saved[-1] >= min_step:
                return saved[-1]
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.slow
def test_sigkill_then_resume_ends_at_the_planned_step(tmp_path: Path) -> None:
    from safetensors import safe_open

    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 4)
    out = tmp_path / "out"
    config = fast_config(
        model,
        tmp_path / "data",
        out,
        resolution=64,
        max_train_epochs=6,
        save_every_n_steps=3,
        save_state=True,
    )
    config_path = tmp_path / "train.toml"
    write_config(config, config_path)
    command = [sys.executable, "-m", "trainer", str(config_path), "--no-progress"]

    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        killed_after = _wait_for_checkpoint(out / "events.jsonl", proc, min_step=6)
        time.sleep(0.3)  # land somewhere in the following steps or the next save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Every visible checkpoint is whole; anything half-written is a hidden temporary.
    for path in out.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            assert handle.keys()
    assert not (out / "model.safetensors").exists()

    resumed = subprocess.run([*command, "--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    events = read_events(out / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from_step"] >= killed_after
    assert starts[1]["resumed_from_step"] < 24
    assert events[-1]["event"] == "end" and events[-1]["step"] == 24 == starts[0]["total_steps"]
    state = next((out / "state").glob("step-*"))
    assert json.loads((state / "progress.json").read_text())["step"] == 24
    assert sorted(p.name for p in (out / "state").iterdir()) == ["latest", "step-00000024"]
    assert not [p for p in out.rglob(".*")], "a temporary was left behind"
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert handle.metadata()["dreamcurate.step"] == "24"
