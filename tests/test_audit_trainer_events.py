"""The trainer's JSON-lines events, as the TUI reads them: order, fields, text-encoder stop, checkpoints, samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_testkit import SQUARE, WIDE, fast_config, make_images

torch = pytest.importorskip("torch")


def test_event_stream_of_a_short_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import Accelerator

    from curator.plan.estimates import checkpoints_written
    from trainer.events import read_events
    from trainer.loop import train
    from trainer.models.tiny import write_tiny_model

    clipped: list[float] = []
    real_clip = Accelerator.clip_grad_norm_

    def recording_clip(self, parameters, max_norm, *args, **kwargs):  # type: ignore[no-untyped-def]
        parameters = list(parameters)
        result = real_clip(self, parameters, max_norm, *args, **kwargs)
        clipped.append(float(torch.norm(torch.stack([p.grad.norm() for p in parameters]))))
        return result

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", recording_clip)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = write_tiny_model(tmp_path / "tiny.safetensors")
        make_images(tmp_path / "data" / "1_sks", [SQUARE, SQUARE, WIDE])  # 2 batches of 2 -> 2 steps an epoch
        config = fast_config(
            model,
            tmp_path / "data",
            tmp_path / "out",
            train_batch_size=2,
            max_train_epochs=2,
            save_every_n_epochs=1,
            stop_text_encoder_training=3,
            sample_prompts=["sks"],
            sample_steps=1,
            max_grad_norm=1e-3,
            learning_rate=1e-4,
            lr_scheduler="linear",
            lr_warmup_steps=2,
            cache_latents=True,
            cache_latents_to_disk=True,
        )
        before = {p: p.read_bytes() for p in sorted((tmp_path / "data").rglob("*")) if p.is_file()}
        train(config, show_progress=False)
        # training reads the folder and writes only under output_dir (the latent cache included)
        assert {p: p.read_bytes() for p in sorted((tmp_path / "data").rglob("*")) if p.is_file()} == before
        assert list((tmp_path / "out" / "latent_cache").iterdir())
    finally:
        torch.set_num_threads(threads)

    # gradient clipping: once per optimizer step, to the configured norm
    assert len(clipped) == 4 and all(n <= 1e-3 * 1.01 for n in clipped), clipped
    events = read_events(tmp_path / "out" / "events.jsonl")
    kinds = [e["event"] for e in events]
    # the start-up stages (data, model, latents) come first, each said; then start
    assert kinds[0] == "stage" and [k for k in kinds if k != "stage"][0] == "start" and kinds[-1] == "end"
    assert {e["stage"] for e in events if e["event"] == "stage"} == {"import", "data", "model", "latents"}
    start = next(e for e in events if e["event"] == "start")
    assert start["total_steps"] == 4 and start["te_stop_step"] == 3
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert {"epoch", "loss", "lr", "it_s", "eta_s"} <= set(e)
        assert e["loss"] >= 0 and e["it_s"] > 0 and e["eta_s"] >= 0
    # linear with 2 warmup steps over 4 optimizer steps; each event reports the rate after its scheduler step
    assert [e["lr"] for e in steps] == pytest.approx([5e-5, 1e-4, 5e-5, 0.0])
    assert [e["epoch"] for e in steps] == [1, 1, 2, 2]
    # the text encoder stops once, right after step 3 (it learnt during steps 1-3), before step 4 is reported
    assert [e["step"] for e in events if e["event"] == "te_stop"] == [3]
    step_at = {e["step"]: i for i, e in enumerate(events) if e["event"] == "step"}
    assert step_at[3] < kinds.index("te_stop") < step_at[4]
    checkpoints = [e for e in events if e["event"] == "checkpoint"]
    assert [e["step"] for e in checkpoints] == [2, 4]
    assert all(Path(e["path"]).is_file() for e in checkpoints)
    assert len(checkpoints) == checkpoints_written(
        epochs=2, save_every_n_epochs=1
    )  # what the plan told the user
    samples = [e for e in events if e["event"] == "sample"]
    assert [e["step"] for e in samples] == [2, 4] and all(Path(e["path"]).is_file() for e in samples)
    assert events[-1]["step"] == 4 and Path(events[-1]["path"]) == Path(checkpoints[-1]["path"])
