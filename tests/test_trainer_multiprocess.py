"""Two processes (torchrun on the CPU, gloo), as ``accelerate launch`` runs it on two GPUs: the step count is the
plan's for two processes, the text encoder stops at the planned step, one model is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_testkit import SQUARE, WIDE, fast_config, make_images

from curator.plan import steps as plan
from curator.settings.config import write_config
from trainer.data import bucket_settings, build_training_data
from trainer.events import read_events

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_processes_take_the_planned_steps(tmp_path: Path) -> None:
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 3 + [WIDE] * 2)
    config = fast_config(
        model,
        tmp_path / "data",
        tmp_path / "out",
        resolution=96,
        max_train_epochs=2,
        gradient_accumulation_steps=2,
        text_encoder_sensitivity=0.5,
    )
    write_config(config, tmp_path / "train.toml")
    counts = plan.bucket_counts(build_training_data(config).entries, bucket_settings(config))
    per_epoch = plan.steps_per_epoch(counts, 1, gradient_accumulation_steps=2, num_processes=2)
    assert per_epoch == 2  # 5 batches over 2 processes x 2 accumulation: ceil(5 / 4)

    done = _two_processes(tmp_path / "train.toml")
    assert done.returncode == 0, done.stderr[-3000:]

    events = read_events(tmp_path / "out" / "events.jsonl")
    start = next(e for e in events if e["event"] == "start")
    assert start["event"] == "start" and start["processes"] == 2 and start["total_steps"] == 2 * per_epoch
    assert [e["step"] for e in events if e["event"] == "te_stop"] == [plan.text_encoder_stop_step(4, 0.5)]
    assert events[-1]["event"] == "end" and events[-1]["step"] == 4
    assert done.stdout.count("trained 4 steps") == 1


@pytest.mark.slow
@pytest.mark.parametrize(("clip_skip", "stop_te"), [(2, None), (2, -1), (1, -1)])
def test_two_processes_train_with_clip_skip(tmp_path: Path, clip_skip: int, stop_te: int | None) -> None:
    """Clip skip 2 with the text encoder training under DDP: the final layer norm is reached through the wrapper
    and the unused top layer is frozen (DDP refuses a parameter without a gradient)."""
    from trainer.models.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.safetensors")
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 4)
    config = fast_config(
        model,
        tmp_path / "data",
        tmp_path / "out",
        max_train_epochs=2,
        clip_skip=clip_skip,
        stop_text_encoder_training=stop_te,
    )
    write_config(config, tmp_path / "train.toml")
    done = _two_processes(tmp_path / "train.toml")
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path / "out" / "events.jsonl")
    assert events[-1]["event"] == "end" and events[-1]["step"] == 4


def _two_processes(config_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "trainer", str(config_path), "--no-progress"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
