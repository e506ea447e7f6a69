"""The two configs an export writes beside the curated folder.

- ``dataset.toml``: Kohya sd-scripts' ``--dataset_config`` format (``[general]``, ``[[datasets]]`` with the
  bucket settings and ``batch_size``, one ``[[datasets.subsets]]`` per exported folder with ``image_dir``,
  ``num_repeats``, ``class_tokens``, ``is_reg``, ``caption_extension``, ``keep_tokens``). With a dataset config
  Kohya ignores the ``N_`` prefix of the folder names, so every subset states its repeats explicitly.
- ``train.toml``: our trainer's config: every ``curator.settings.config.TrainConfig`` field (Kohya's argument
  names), the settings the plan used, with the export's paths.
- ``sdxl_train.toml`` (SDXL base models): a ``--config_file`` for Kohya's ``sdxl_train.py`` naming ``dataset.toml``,
  with the same training settings in the forms Kohya parses (``resolution`` lives in dataset.toml; an encoder's
  unset rate, "same as learning_rate", is left out: Kohya reads a missing one so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.export import tomlwrite
from curator.settings.config import TrainConfig, config_to_toml


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


def dataset_toml(out: Path, folders: list[ExportedFolder], s: TrainConfig) -> str:
    """Kohya's dataset config naming exactly the exported folders (absolute ``image_dir`` under ``out``), with the
    settings' batch size and bucket settings: a dataset config overrides Kohya's own ``--train_batch_size`` and
    bucket arguments, so it must say what the plan counted."""
    general: dict[str, Any] = {"shuffle_caption": s.shuffle_caption, "caption_extension": s.caption_extension}
    if s.keep_tokens:
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
        if keep and not f.is_reg:
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


DEFAULT_OUTPUT_NAME = TrainConfig().output_name


def train_config(
    out: Path, folders: list[ExportedFolder], s: TrainConfig, base_model: str = ""
) -> TrainConfig:
    """The trainer's config: the settings the plan used, with the export's paths filled in."""
    has_reg = any(f.is_reg for f in folders)
    train = [f for f in folders if not f.is_reg]
    return s.replace(
        pretrained_model_name_or_path=base_model or s.pretrained_model_name_or_path,
        train_data_dir=str(out / "img"),
        reg_data_dir=str(out / "reg") if has_reg else "",
        output_dir=str(out / "model"),
        # a name of the user's stays; the default takes the first concept's name
        output_name=train[0].name if train and s.output_name == DEFAULT_OUTPUT_NAME else s.output_name,
    )


def train_toml(config: TrainConfig) -> str:
    """``train.toml`` text: every setting, each with its help line (what ``dreamcurate train`` and the plan read)."""
    header = (
        "# written by dreamcurate export: the settings the plan used (OUT/plan.json), Kohya sd-scripts names\n"
        "# train it with: dreamcurate train train.toml\n"
    )
    return header + config_to_toml(config)


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
    "full_bf16",
    "fused_backward_pass",
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
    "save_state",
)


def sdxl_train_config(out: Path, config: TrainConfig) -> dict[str, Any]:
    """Kohya ``sdxl_train.py --config_file`` settings for an export whose trainer config is ``config``."""
    kohya: dict[str, Any] = {"dataset_config": str(out / "dataset.toml"), "sdpa": True}
    kohya.update({k: getattr(config, k) for k in _SDXL_SAME})
    for key in ("max_train_epochs", "max_train_steps", "save_every_n_epochs", "save_every_n_steps"):
        if getattr(config, key):  # Kohya: unset rather than 0
            kohya[key] = getattr(config, key)
    for key in ("learning_rate_te1", "learning_rate_te2"):
        if config.train_text_encoder and getattr(config, key) is not None:
            kohya[key] = getattr(config, key)
    if config.optimizer_args:
        kohya["optimizer_args"] = list(config.optimizer_args)
    if config.max_token_length != 75:
        kohya["max_token_length"] = config.max_token_length
    return kohya


def sdxl_train_toml(config: dict[str, Any]) -> str:
    """``sdxl_train.toml`` text of a :func:`sdxl_train_config` dict."""
    header = (
        "Kohya sd-scripts SDXL fine-tune config, written by dreamcurate export\n"
        "train it with: accelerate launch sdxl_train.py --config_file sdxl_train.toml"
    )
    return tomlwrite.dumps(config, header=header)
