"""The two configs an export writes beside the curated folder.

- ``dataset.toml``: Kohya sd-scripts' ``--dataset_config`` format (``[general]``, ``[[datasets]]`` with the
  bucket settings and ``batch_size``, one ``[[datasets.subsets]]`` per exported folder with ``image_dir``,
  ``num_repeats``, ``class_tokens``, ``is_reg``, ``caption_extension``, ``keep_tokens``). With a dataset config
  Kohya ignores the ``N_`` prefix of the folder names, so every subset states its repeats explicitly.
- ``train.toml``: our trainer's config, with keys named as Kohya's arguments and ``curator.settings.config.TrainConfig``'s
  fields. ``curator`` may not import ``trainer``, so it is written from plain data; settings left out take the
  trainer's defaults.
- ``sdxl_train.toml`` (SDXL base models): a ``--config_file`` for Kohya's ``sdxl_train.py`` that names
  ``dataset.toml`` and carries the same training settings in the forms Kohya parses (``resolution`` lives in
  dataset.toml; rates it would read literally, such as our ``-1`` = "same as learning_rate", are left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.export import tomlwrite


@dataclass(frozen=True)
class ExportedFolder:
    """One folder of the export: ``img/10_cat`` or ``reg/1_person``."""

    subdir: str  # "img" or "reg"
    name: str  # concept name
    repeats: int
    count: int
    is_reg: bool
    keep_tokens: int | None = None  # this subset's keep_tokens (None: the dataset-wide value)

    @property
    def folder(self) -> str:
        """The folder name in Kohya's layout, ``<repeats>_<name>``."""
        return f"{self.repeats}_{self.name}"

    @property
    def rel(self) -> str:
        """The path relative to the export root."""
        return f"{self.subdir}/{self.folder}"


@dataclass
class TrainingSettings:
    """The dataset-level training settings both configs share (Kohya names)."""

    resolution: int = 512
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    train_batch_size: int = 1
    caption_extension: str = ".txt"
    shuffle_caption: bool = True
    keep_tokens: int | None = None  # None: not written (the trainer's default applies)


def dataset_toml(out: Path, folders: list[ExportedFolder], s: TrainingSettings) -> str:
    """Kohya's dataset config naming exactly the exported folders, with absolute ``image_dir`` under ``out``."""
    general: dict[str, Any] = {"shuffle_caption": s.shuffle_caption, "caption_extension": s.caption_extension}
    if s.keep_tokens is not None:
        general["keep_tokens"] = s.keep_tokens
    subsets = []
    for f in folders:
        subset: dict[str, Any] = {
            "image_dir": str(out / f.subdir / f.folder),
            "num_repeats": f.repeats,
            "class_tokens": f.name,
            "is_reg": f.is_reg,
            "caption_extension": s.caption_extension,
        }
        keep = f.keep_tokens if f.keep_tokens is not None else s.keep_tokens
        if keep is not None and not f.is_reg:
            subset["keep_tokens"] = keep
        subsets.append(subset)
    dataset = {
        "resolution": s.resolution,
        "batch_size": s.train_batch_size,
        "enable_bucket": s.enable_bucket,
        "min_bucket_reso": s.min_bucket_reso,
        "max_bucket_reso": s.max_bucket_reso,
        "bucket_reso_steps": s.bucket_reso_steps,
        "bucket_no_upscale": s.bucket_no_upscale,
        "subsets": subsets,
    }
    header = "Kohya sd-scripts dataset config (--dataset_config), written by dreamcurate export"
    return tomlwrite.dumps({"general": general, "datasets": [dataset]}, header=header)


def train_config(
    out: Path,
    folders: list[ExportedFolder],
    s: TrainingSettings,
    base_model: str = "",
    plan: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trainer config as plain data (TrainConfig field names), filled from the export and the plan's JSON."""
    plan = plan or {}
    has_reg = any(f.is_reg for f in folders)
    train = [f for f in folders if not f.is_reg]
    config: dict[str, Any] = {
        "pretrained_model_name_or_path": base_model,
        "train_data_dir": str(out / "img"),
        "reg_data_dir": str(out / "reg") if has_reg else "",
        "resolution": s.resolution,
        "enable_bucket": s.enable_bucket,
        "min_bucket_reso": s.min_bucket_reso,
        "max_bucket_reso": s.max_bucket_reso,
        "bucket_reso_steps": s.bucket_reso_steps,
        "bucket_no_upscale": s.bucket_no_upscale,
        "caption_extension": s.caption_extension,
        "shuffle_caption": s.shuffle_caption,
        "keep_tokens": s.keep_tokens,
        "train_batch_size": s.train_batch_size,
        "output_dir": str(out / "model"),
        "output_name": train[0].name if train else "model",
    }
    for key in (
        "max_train_epochs",
        "max_train_steps",
        "stop_text_encoder_training",
        "gradient_accumulation_steps",
    ):
        if isinstance(plan.get(key), int) and not isinstance(plan.get(key), bool):
            config[key] = plan[key]
    config.update(overrides or {})
    return {k: v for k, v in config.items() if v is not None}


def train_toml(config: dict[str, Any]) -> str:
    """``train.toml`` text of a :func:`train_config` dict."""
    header = (
        "dreamcurate training config (Kohya sd-scripts setting names), written by dreamcurate export\n"
        "train it with: dreamcurate train train.toml   (settings not listed take the trainer's defaults)"
    )
    return tomlwrite.dumps(config, header=header)


#: TrainConfig fields that Kohya's sdxl_train.py reads under the same name and meaning
_SDXL_SAME = (
    "pretrained_model_name_or_path",
    "output_dir",
    "output_name",
    "save_model_as",
    "save_precision",
    "mixed_precision",
    "learning_rate",
    "lr_scheduler",
    "lr_warmup_steps",
    "optimizer_type",
    "max_grad_norm",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "cache_latents",
    "cache_latents_to_disk",
    "cache_text_encoder_outputs",
    "train_text_encoder",
    "v_parameterization",
    "zero_terminal_snr",
    "noise_offset",
    "min_snr_gamma",
    "prior_loss_weight",
    "caption_dropout_rate",
    "seed",
    "save_every_n_epochs",
    "save_every_n_steps",
    "save_state",
)


def sdxl_train_config(out: Path, train: dict[str, Any]) -> dict[str, Any]:
    """Kohya ``sdxl_train.py --config_file`` settings for an export whose own train config is ``train`` (our field
    names, as :func:`train_config` returns them; missing ones take TrainConfig's SDXL defaults)."""
    from curator.settings.config import TrainConfig

    full = TrainConfig.for_family("sdxl").to_dict()
    full.update(train)
    config: dict[str, Any] = {"dataset_config": str(out / "dataset.toml"), "sdpa": True}
    config.update({k: full[k] for k in _SDXL_SAME})
    for key in ("max_train_epochs", "max_train_steps", "save_every_n_epochs", "save_every_n_steps"):
        if not full[key]:
            config.pop(key, None)  # Kohya: unset, not 0
        else:
            config[key] = full[key]
    for key in ("learning_rate_te1", "learning_rate_te2"):
        if full["train_text_encoder"] and full[key] >= 0:
            config[key] = full[key]
    if full["max_token_length"] != 75:
        config["max_token_length"] = full["max_token_length"]
    if full["mixed_precision"] == "bf16" and full["optimizer_type"] == "Adafactor":
        config["full_bf16"] = True  # the recipe behind Kohya's 10 GB figure (sd-scripts PR 1259)
    if full.get("fused_backward_pass"):
        config["fused_backward_pass"] = True
    return config


def sdxl_train_toml(config: dict[str, Any]) -> str:
    """``sdxl_train.toml`` text of a :func:`sdxl_train_config` dict."""
    header = (
        "Kohya sd-scripts SDXL fine-tune config, written by dreamcurate export\n"
        "train it with: accelerate launch sdxl_train.py --config_file sdxl_train.toml"
    )
    return tomlwrite.dumps(config, header=header)
