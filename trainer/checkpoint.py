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

import dataclasses
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.fsutil import atomic_write_text
from curator.settings.config import ConfigError, TrainConfig

STATE_DIRNAME = "state"
PROGRESS_FILENAME = "progress.json"
SCHEDULER_FILENAME = "scheduler.json"
STATE_SCHEMA = "dreamcurate.state/1"
#: accelerate's files for registered custom objects: unpickled with weights_only=False, so never in our states
CUSTOM_PICKLE = re.compile(r"^custom_checkpoint_\d+\.pkl$")

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
    "validation_split",
    "optimizer_type",
    "lr_scheduler",
    # the optimizer's parameter groups and dtypes (SDXL): a saved state only loads into the same layout
    "train_text_encoder",
    "learning_rate_te1",
    "learning_rate_te2",
    "full_bf16",
    "network_module",
    "network_dim",
    "conv_dim",
    "network_train_unet_only",
    "network_train_text_encoder_only",
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


def save_state(accelerator: Any, output_dir: Path, progress: Progress, scheduler: Any = None) -> Path:
    """Save the accelerate state, the scheduler (JSON) and our progress atomically; keep only the newest state.
    Returns its folder. No pickle of ours goes in: the scheduler is not registered with accelerate (it would be
    pickled and unpickled in full), and :func:`load_state` refuses a state that holds one."""
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
        if scheduler is not None:
            atomic_write_text(tmp / SCHEDULER_FILENAME, json.dumps(scheduler.state_dict()))
        atomic_write_text(tmp / PROGRESS_FILENAME, _stamped(progress, tmp))
        if final.exists():
            if not _is_our_state(final):
                shutil.rmtree(tmp)
                raise ConfigError(
                    f"refusing to replace {final}: it is not a saved training state of dreamcurate"
                )
            _discard(final)
        tmp.rename(final)
        atomic_write_text(root / "latest", final.name + "\n")
        for old in root.glob("step-*"):  # only states we wrote: a folder of the user's that matches stays
            if old != final and _is_our_state(old):
                _discard(old)
    accelerator.wait_for_everyone()
    return final


def _discard(state: Path) -> None:
    """Delete a state folder so that a kill mid-way leaves a hidden temporary (removed at the next start), never a
    half-deleted ``step-*`` folder that no longer looks like ours and would stay for good."""
    doomed = state.with_name(f".tmp-old-{state.name}")
    if doomed.exists():
        shutil.rmtree(doomed)
    state.rename(doomed)
    shutil.rmtree(doomed)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamped(progress: Progress, folder: Path) -> str:
    """progress.json: our schema and the sha256 of every file beside it, so a state is only loaded whole and as
    we wrote it."""
    data = json.loads(progress.to_json())
    files = {
        p.name: _file_digest(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != PROGRESS_FILENAME
    }
    data.update(schema=STATE_SCHEMA, files=files)
    return json.dumps(data, indent=1)


def _is_our_state(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and (folder / PROGRESS_FILENAME).is_file()


def latest_progress(output_dir: Path, verify: bool = False) -> Progress | None:
    """The newest complete resume state in ``output_dir``, or None. ConfigError for a state we did not write;
    ``verify`` (before resuming from it) also checks every file of it (:func:`check_state_files`)."""
    root = output_dir / STATE_DIRNAME
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name.startswith("step-") or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"{pointer} does not name a saved state of dreamcurate ({name[:40]!r})")
    state_dir = root / name
    progress_file = state_dir / PROGRESS_FILENAME
    if not progress_file.is_file() or state_dir.is_symlink():
        return None
    try:
        data = json.loads(progress_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{progress_file}: not a saved state of dreamcurate ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
        raise ConfigError(
            f"{state_dir}: not a resume state this version of dreamcurate wrote; start over with --fresh"
        )
    fields = {f.name for f in dataclasses.fields(Progress)} - {"state_dir"}
    try:
        progress = Progress(**{k: data[k] for k in fields}, state_dir=state_dir)
    except KeyError as exc:
        raise ConfigError(f"{progress_file}: damaged, {exc} is missing") from exc
    if not isinstance(progress.step, int) or not isinstance(progress.config, dict):
        raise ConfigError(f"{progress_file}: damaged (step or config of the wrong type)")
    if verify:
        check_state_files(progress)
    return progress


def check_state_files(progress: Progress) -> None:
    """ConfigError unless the state folder holds exactly the files we wrote there, each with its recorded
    sha256, and no pickle that would need full unpickling (accelerate loads the rest with weights_only)."""
    assert progress.state_dir is not None
    folder = progress.state_dir
    data = json.loads((folder / PROGRESS_FILENAME).read_text(encoding="utf-8"))
    recorded = data.get("files")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{folder}: no list of its files; not a state dreamcurate wrote")
    present = {p.name for p in folder.iterdir()} - {PROGRESS_FILENAME}
    for name in sorted(present):
        if CUSTOM_PICKLE.match(name):
            raise ConfigError(
                f"{folder}: holds {name}, a pickle that only full unpickling reads (it could run code); "
                "refusing to resume from it, start over with --fresh"
            )
    if present != set(recorded):
        extra = sorted(present ^ set(recorded))
        raise ConfigError(
            f"{folder}: its files differ from what was saved ({', '.join(extra[:3])}); refusing it"
        )
    for name, digest in recorded.items():
        if (
            not (folder / name).is_file()
            or (folder / name).is_symlink()
            or _file_digest(folder / name) != digest
        ):
            raise ConfigError(f"{folder}: {name} changed since it was saved; refusing to resume from it")


def load_state(accelerator: Any, progress: Progress, scheduler: Any = None, strict: bool = True) -> None:
    """Restore a state :func:`save_state` wrote (``progress`` from ``latest_progress(verify=True)``): accelerate's
    pieces (weights, optimizer, RNG) through its loader with ``weights_only``; the scheduler from our JSON.
    ``strict=False`` for a LoRA's state, which holds only the adapters."""
    assert progress.state_dir is not None
    accelerator.load_state(str(progress.state_dir), strict=strict)
    sched_file = progress.state_dir / SCHEDULER_FILENAME
    if scheduler is not None and sched_file.is_file():
        scheduler.load_state_dict(json.loads(sched_file.read_text(encoding="utf-8")))


def check_resumable(config: TrainConfig, progress: Progress) -> None:
    """A ConfigError when ``config`` changes a setting the saved run's schedule depends on."""
    defaults = TrainConfig().to_dict()  # a setting newer than the saved state had its default then
    saved = {name: progress.config.get(name, defaults[name]) for name in SCHEDULE_FIELDS}
    changed = [name for name in SCHEDULE_FIELDS if saved[name] != getattr(config, name)]
    if changed:
        name = changed[0]
        raise ConfigError(
            f"cannot resume: {name} was {saved[name]!r} and is now {getattr(config, name)!r} "
            f"(use the original config, or a new output_dir)"
        )


def training_metadata(
    config: TrainConfig, step: int, epoch: int, family: str, v_prediction: bool = False
) -> dict[str, str]:
    """Metadata written into a checkpoint's safetensors header (ours, Kohya's ``ss_*``, the model spec)."""
    from trainer.modelspec import base_model_version, modelspec_metadata

    return {
        "dreamcurate.step": str(step),
        "dreamcurate.epoch": str(epoch),
        "dreamcurate.config": json.dumps(config.to_dict()),
        "ss_training_comment": "trained with dreamcurate",
        "ss_base_model_version": base_model_version(family, v_prediction),
        "ss_steps": str(step),
        "ss_epoch": str(epoch),
        **modelspec_metadata(config, family, v_prediction),
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
    _check_not_the_base(config, path)
    model_io.check_output_target(path, layout, overwrite=True)


def _check_not_the_base(config: TrainConfig, final: Path) -> None:
    """ConfigError when a checkpoint of this run would be written over (or into) the base model it trains from."""
    inputs = [("base model", config.pretrained_model_name_or_path), ("vae", config.vae)]
    out_dir = Path(config.output_dir).absolute().resolve()
    for what, given in inputs:
        if not given:
            continue
        base = Path(given).absolute().resolve()
        target = final.absolute().resolve()
        same_name = base.parent == out_dir and (
            base.name == target.name or base.name.startswith(f"{config.output_name}-")
        )
        if same_name or base == target or base in target.parents or target in base.parents:
            raise ConfigError(
                f"refusing to train: the checkpoints ({target.parent}/{config.output_name}*) would replace the "
                f"{what} {base}; pick another output_dir or output_name"
            )


def earlier_run(config: TrainConfig) -> list[Path]:
    """What an earlier run left in output_dir that a new run would replace: its resume state and checkpoints."""
    out = Path(config.output_dir)
    if not out.is_dir():
        return []
    found = (
        [p for p in sorted((out / STATE_DIRNAME).glob("step-*")) if _is_our_state(p)]
        if (out / STATE_DIRNAME).is_dir()
        else []
    )
    name = config.output_name
    found += [
        p
        for p in sorted(out.iterdir())
        if p.name == name or p.name.startswith((f"{name}.", f"{name}-"))
        if p.suffix == ".safetensors" or (p.is_dir() and (p / "model_index.json").is_file())
    ]
    return found


def check_fresh_start(config: TrainConfig, resume: bool, fresh: bool) -> None:
    """ConfigError when a run that is not ``--resume`` would replace an earlier run's resume state (the only way
    back after a crash) or checkpoints, unless ``--fresh`` says that is meant."""
    _check_not_the_base(config, checkpoint_path(config, epoch=0, step=0, final=True, by_step=False))
    if resume or fresh:
        return
    found = earlier_run(config)
    if not found:
        return
    shown = ", ".join(p.name for p in found[:3]) + (" ..." if len(found) > 3 else "")
    raise ConfigError(
        f"{config.output_dir} holds an earlier run ({shown}): --resume continues it, --fresh starts over and "
        "replaces it (or pick another output_dir)"
    )
