"""Adversarial tests of training (issue items 6, 10): the hostile command or state folder first, then proof that
the base model, the earlier run and the home stand-in are unchanged and the answer is one line."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from curator.settings.config import write_config
from tests._safety import assert_one_line_error, digest, home, invoke
from tests.trainer_testkit import SQUARE, fast_config, make_images


def _setup(tmp_path: Path, **changes: object) -> tuple[Path, Path, Path]:
    base_dir = tmp_path / "models"
    base_dir.mkdir()
    base = base_dir / "model.safetensors"
    base.write_bytes(os.urandom(2048))  # refused before it is ever read
    make_images(tmp_path / "data" / "1_sks", [SQUARE] * 2)
    config = tmp_path / "train.toml"
    write_config(fast_config(base, tmp_path / "data", tmp_path / "out", **changes), config)
    return base, config, tmp_path / "out"


def test_6_training_never_replaces_its_own_base_model(tmp_path: Path) -> None:
    base, config, _ = _setup(tmp_path)
    before = digest(base.parent)
    for fresh in ([], ["--fresh"]):
        result = invoke(["train", config, "--output-dir", base.parent, "--output-name", "model", *fresh])
        assert_one_line_error(result, "base model", str(base))
        assert digest(base.parent) == before
    epoch_named = base.rename(base.with_name("model-000040.safetensors"))  # an epoch save's name
    result = invoke(
        ["train", config, "--pretrained-model-name-or-path", epoch_named, "--output-dir", base.parent]
    )
    assert_one_line_error(result, "base model", str(epoch_named))


def _earlier_state(out: Path, step: int = 6) -> Path:
    state = out / "state" / f"step-{step:08d}"
    state.mkdir(parents=True)
    (state / "progress.json").write_text(json.dumps({"step": step}))
    (out / "state" / "latest").write_text(state.name + "\n")
    return state


def test_6_a_rerun_without_resume_keeps_the_earlier_runs_state_and_checkpoints(tmp_path: Path) -> None:
    _, config, out = _setup(tmp_path)
    _earlier_state(out)
    (out / "model-000040.safetensors").write_bytes(b"epoch 40 of the earlier run")
    before = digest(out)
    result = invoke(["train", config])
    assert_one_line_error(result, "--resume", "--fresh")
    assert digest(out) == before


class _Planted:
    """What a hostile state folder's pickle would do when unpickled: create a file in the user's home."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.target,))


def test_10_a_planted_state_with_a_pickle_is_refused_unread(tmp_path: Path) -> None:
    _, config, out = _setup(tmp_path)
    user = home(tmp_path / "home")
    state = _earlier_state(out)
    (state / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Planted(user / "pwned")))
    (state / "random_states_0.pkl").write_bytes(pickle.dumps(_Planted(user / "pwned")))
    files = {p.name: "0" * 64 for p in state.iterdir() if p.name != "progress.json"}
    progress = {
        "schema": "dreamcurate.state/1",
        "step": 6,
        "epoch": 1,
        "groups_done": 0,
        "te_trained_steps": 0,
    }
    (state / "progress.json").write_text(
        json.dumps({**progress, "last_checkpoint": None, "config": {}, "files": files})
    )
    before = digest(user, out)
    result = invoke(["train", config, "--resume"])
    assert_one_line_error(result, "custom_checkpoint_0.pkl")
    assert not (user / "pwned").exists() and digest(user, out) == before


def test_10_a_state_we_did_not_write_is_refused(tmp_path: Path) -> None:
    _, config, out = _setup(tmp_path)
    _earlier_state(out)  # no schema, no list of files: an older version's or someone else's
    result = invoke(["train", config, "--resume"])
    assert_one_line_error(result, "not a resume state", "--fresh")
