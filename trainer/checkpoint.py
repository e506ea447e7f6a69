"""Checkpoints and resume state, written so that a crash at any moment leaves only whole files.

A model checkpoint goes through ``trainer.models.io`` (atomic). A resume state is ``accelerator.save_state`` into a
hidden temporary folder, our ``progress.json`` (config, step, epoch, position in the epoch) written last, then one
rename to ``OUTPUT_DIR/state/step-NNNNNNNN``; ``state/latest`` names the newest. A killed run leaves at most a
hidden temporary folder or file, which the next start removes.

Example::

    progress = latest_progress(Path("out"))      # None when there is nothing to resume
    print(progress.step, progress.state_dir)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.fsutil import atomic_write_text
from curator.settings.config import ConfigError, TrainConfig

STATE_DIRNAME = "state"
PROGRESS_FILENAME = "progress.json"

#: Settings that change the step schedule or the data: a resumed run must use the values it started with.
SCHEDULE_FIELDS = (
    "pretrained_model_name_or_path",
    "train_data_dir",
    "reg_data_dir",
    "resolution",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "max_train_epochs",
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "stop_text_encoder_training",
    "text_encoder_sensitivity",
    "seed",
    "optimizer_type",
    "lr_scheduler",
    # the optimizer's parameter groups and dtypes (SDXL): a saved state only loads into the same layout
    "train_text_encoder",
    "learning_rate_te1",
    "learning_rate_te2",
    "full_bf16",
)


@dataclass(frozen=True)
class Progress:
    """Where a saved run stood: optimizer steps done, the epoch, batches groups done in that epoch."""

    step: int
    epoch: int
    groups_done: int
    te_trained_steps: int
    last_checkpoint: str | None
    config: dict[str, Any]
    state_dir: Path | None = None

    def to_json(self) -> str:
        """JSON text (state_dir is implied by the file's folder)."""
        data = {k: v for k, v in self.__dict__.items() if k != "state_dir"}
        return json.dumps(data, indent=1)


def remove_stale_temporaries(output_dir: Path, output_name: str) -> list[Path]:
    """Delete what a killed run left half-written in our output folder: hidden temporaries of checkpoints
    (``.NAME*``, from model_io's temp + rename), of the latent cache and of resume states (``state/.tmp-*``)."""
    removed: list[Path] = []
    candidates: list[Path] = []
    if (output_dir).is_dir():  # model_io's temporaries: ".NAME<...>.tmp"; other hidden files are the user's
        candidates += [
            p
            for p in output_dir.iterdir()
            if p.name.startswith(f".{output_name}") and p.name.endswith(".tmp")
        ]
    for sub in (output_dir / STATE_DIRNAME, output_dir / "latent_cache", output_dir / "samples"):
        if sub.is_dir():
            candidates += [p for p in sub.iterdir() if p.name.startswith(".") and (".tmp" in p.name)]
    for path in candidates:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        removed.append(path)
    return removed


def save_state(accelerator: Any, output_dir: Path, progress: Progress) -> Path:
    """Save the accelerate state and our progress atomically; keep only the newest state. Returns its folder."""
    root = output_dir / STATE_DIRNAME
    final = root / f"step-{progress.step:08d}"
    tmp = root / f".tmp-step-{progress.step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(tmp / PROGRESS_FILENAME, progress.to_json())
        if final.exists():
            if not _is_our_state(final):
                shutil.rmtree(tmp)
                raise ConfigError(
                    f"refusing to replace {final}: it is not a saved training state of dreamcurate"
                )
            shutil.rmtree(final)
        tmp.rename(final)
        atomic_write_text(root / "latest", final.name + "\n")
        for old in root.glob("step-*"):  # only states we wrote: a folder of the user's that matches stays
            if old != final and _is_our_state(old):
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def _is_our_state(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and (folder / PROGRESS_FILENAME).is_file()


def latest_progress(output_dir: Path) -> Progress | None:
    """The newest complete resume state in ``output_dir``, or None."""
    root = output_dir / STATE_DIRNAME
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    state_dir = root / pointer.read_text(encoding="utf-8").strip()
    progress_file = state_dir / PROGRESS_FILENAME
    if not progress_file.is_file():
        return None
    data = json.loads(progress_file.read_text(encoding="utf-8"))
    return Progress(**data, state_dir=state_dir)


def check_resumable(config: TrainConfig, progress: Progress) -> None:
    """A ConfigError when ``config`` changes a setting the saved run's schedule depends on."""
    changed = [name for name in SCHEDULE_FIELDS if progress.config.get(name) != getattr(config, name)]
    if changed:
        name = changed[0]
        raise ConfigError(
            f"cannot resume: {name} was {progress.config.get(name)!r} and is now {getattr(config, name)!r} "
            f"(use the original config, or a new output_dir)"
        )


def training_metadata(config: TrainConfig, step: int, epoch: int, family: str) -> dict[str, str]:
    """Metadata written into a checkpoint's safetensors header."""
    return {
        "dreamcurate.step": str(step),
        "dreamcurate.epoch": str(epoch),
        "dreamcurate.config": json.dumps(config.to_dict()),
        "ss_training_comment": "trained with dreamcurate",
        "ss_base_model_version": family,
        "ss_steps": str(step),
        "ss_epoch": str(epoch),
    }


def checkpoint_path(config: TrainConfig, epoch: int, step: int, final: bool, by_step: bool) -> Path:
    """Kohya's naming: ``NAME.safetensors`` at the end, ``NAME-000040.safetensors`` for epoch saves, ``NAME-step00000100``
    for step saves; a folder for the diffusers format."""
    if final:
        stem = config.output_name
    elif by_step:
        stem = f"{config.output_name}-step{step:08d}"
    else:
        stem = f"{config.output_name}-{epoch:06d}"
    suffix = ".safetensors" if config.save_model_as == "safetensors" else ""
    return Path(config.output_dir) / f"{stem}{suffix}"


def save_model(model: Any, config: TrainConfig, path: Path, metadata: dict[str, str]) -> Path:
    """Write the model (atomically, through model_io)."""
    from trainer.models import io as model_io

    path.parent.mkdir(parents=True, exist_ok=True)
    # overwrite: a rerun replaces its own checkpoints, but only model files / diffusers model folders
    if config.save_model_as == "safetensors":
        model_io.save_single_file(
            model, path, precision=config.save_precision, metadata=metadata, overwrite=True
        )
    else:
        model_io.save_diffusers(model, path, precision=config.save_precision, overwrite=True)
    return path


def check_final_target(config: TrainConfig) -> None:
    """ModelError now, not after hours of training, when the final checkpoint's name is taken by something that
    is not a model (a user's folder or file named like ``output_name`` in ``output_dir``)."""
    from trainer.models import io as model_io

    layout = "single-file" if config.save_model_as == "safetensors" else "diffusers"
    path = checkpoint_path(config, epoch=0, step=0, final=True, by_step=False)
    model_io.check_output_target(path, layout, overwrite=True)
