"""The trainer's settings: one dataclass, read from and written to TOML, validated with one-line errors.

Field names follow Kohya sd-scripts' argument names wherever one exists, so a Kohya user's knowledge (and most of a
Kohya config file: its section tables are flattened) carries over. Defaults follow the seed tutorial (DESIGN.md).

Example::

    config = TrainConfig(pretrained_model_name_or_path="base.safetensors", train_data_dir="dataset")
    write_config(config, Path("train.toml"))
    assert read_config(Path("train.toml")) == config
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from curator.fsutil import atomic_write_text


class ConfigError(ValueError):
    """A configuration problem, worded as one line a person can act on."""


def _f(default: Any, help_text: str, **extra: Any) -> Any:
    """A dataclass field with a default and its one-line help text."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help_text, **extra})
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass
class TrainConfig:
    """Every setting of a DreamBooth run (Kohya sd-scripts names; the tutorial's defaults).

    Example::

        config = TrainConfig(pretrained_model_name_or_path="sd15.safetensors", train_data_dir="out/dataset")
        config.validate()
    """

    # -- model
    pretrained_model_name_or_path: str = _f(
        "", "base model: a .safetensors/.ckpt single file or a diffusers folder"
    )
    vae: str = _f("", "optional VAE file or folder replacing the base model's VAE ('' = keep the model's)")
    v_parameterization: bool = _f(
        False, "train with v-prediction (SD 2.x 768-v, NoobAI-style SDXL models); epsilon otherwise"
    )
    zero_terminal_snr: bool = _f(
        False, "rescale the noise schedule to zero terminal SNR (Lin et al. 2023; with v_parameterization)"
    )
    # -- data
    train_data_dir: str = _f("", "training images in Kohya layout: DIR/<repeats>_<name>/*.png with captions")
    reg_data_dir: str = _f(
        "", "regularization images, same layout ('' = none); repeated to match training images"
    )
    prior_loss_weight: float = _f(1.0, "loss weight of regularization images (prior preservation)")
    resolution: int = _f(512, "training resolution; bucket area is resolution^2 (an SDXL base: 1024)")
    enable_bucket: bool = _f(True, "aspect-ratio buckets (otherwise every image is cropped to a square)")
    min_bucket_reso: int = _f(256, "smallest bucket side in pixels")
    max_bucket_reso: int = _f(1280, "largest bucket side in pixels")
    bucket_reso_steps: int = _f(64, "bucket side step in pixels (a multiple of 8)")
    bucket_no_upscale: bool = _f(False, "never upscale small images to fill a bucket")
    caption_extension: str = _f(".txt", "caption file extension beside each image")
    shuffle_caption: bool = _f(True, "shuffle the comma-separated tags of each caption every step")
    keep_tokens: int = _f(
        0, "keep the first N comma-separated TAGS in place when shuffling (tags, not CLIP tokens)"
    )
    keep_tokens_separator: str = _f("", "a separator marking the end of the kept part instead of keep_tokens")
    caption_dropout_rate: float = _f(0.0, "probability of training a step with an empty caption")
    max_token_length: int = _f(75, "CLIP tokens per caption: 75, 150 or 225 (encoded in 75-token chunks)")
    # -- schedule
    max_train_epochs: int = _f(
        200, "epochs to train; wins over max_train_steps, as in Kohya (0 = use max_train_steps)"
    )
    max_train_steps: int = _f(0, "optimizer steps to train when max_train_epochs is 0")
    train_batch_size: int = _f(1, "images per batch (all from one bucket)")
    gradient_accumulation_steps: int = _f(1, "batches per optimizer step")
    learning_rate: float = _f(2e-6, "UNet learning rate")
    learning_rate_te: float = _f(0.0, "text encoder learning rate (0 = same as learning_rate)")
    lr_scheduler: str = _f(
        "constant", "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial"
    )
    lr_warmup_steps: int = _f(0, "optimizer steps of linear learning-rate warm-up")
    optimizer_type: str = _f(
        "AdamW", "AdamW, AdamW8bit (needs bitsandbytes) or Adafactor (fixed learning rate)"
    )
    max_grad_norm: float = _f(1.0, "clip gradients to this norm (0 = no clipping)")
    fused_backward_pass: bool = _f(
        False,
        "update each parameter inside the backward pass and free its gradient (Kohya's; optimizer_type "
        "Adafactor, no gradient accumulation, bf16 or no mixed precision, one GPU; clips per tensor)",
    )
    train_text_encoder: bool = _f(
        False,
        "SDXL: train the text encoders too (SD 1.x / 2.x always train theirs, until the stop step)",
    )
    learning_rate_te1: float = _f(
        -1.0, "SDXL text encoder 1 (CLIP ViT-L) learning rate (-1 = learning_rate, 0 = keep it frozen)"
    )
    learning_rate_te2: float = _f(
        -1.0, "SDXL text encoder 2 (OpenCLIP bigG) learning rate (-1 = learning_rate, 0 = keep it frozen)"
    )
    cache_text_encoder_outputs: bool = _f(
        False,
        "SDXL: encode each caption once with the frozen text encoders, then move them off the GPU "
        "(needs shuffle_caption off and no caption dropout, as Kohya)",
    )
    stop_text_encoder_training: int = _f(
        0, "optimizer step at which the text encoder stops (0 = see sensitivity, -1 = never train it)"
    )
    text_encoder_sensitivity: float = _f(
        0.0, "stop the text encoder after this fraction of all optimizer steps (0 = train it to the end)"
    )
    # -- numerics
    mixed_precision: str = _f("fp16", "no, fp16 or bf16 (fp16 falls back to no on a CPU)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the UNet and text encoder")
    full_bf16: bool = _f(
        False,
        "keep the trained weights and gradients in bf16, not float32 (Kohya's; needs mixed_precision bf16)",
    )
    noise_offset: float = _f(0.0, "noise offset (0 = off); about 0.05-0.1 widens the brightness range")
    min_snr_gamma: float = _f(0.0, "Min-SNR loss weighting gamma (0 = off; 5 is the paper's value)")
    clip_skip: int = _f(1, "use the text encoder's N-th layer from the end (1 = last, 2 for anime models)")
    seed: int = _f(42, "random seed (data order, captions, noise)")
    cache_latents: bool = _f(True, "encode every image with the VAE once before training")
    cache_latents_to_disk: bool = _f(False, "keep cached latents in OUTPUT_DIR/latent_cache across runs")
    # -- output
    output_dir: str = _f("output", "where checkpoints, samples, state and events.jsonl go")
    output_name: str = _f("model", "checkpoint file name (intermediate saves add -EPOCH)")
    save_model_as: str = _f("safetensors", "safetensors (single file) or diffusers (folder)")
    save_precision: str = _f("float", "float (about 4 GB for SD 1.5), fp16 or bf16 (about 2 GB)")
    save_every_n_epochs: int = _f(40, "save a checkpoint every N epochs (0 = only at the end)")
    save_every_n_steps: int = _f(0, "also save every N optimizer steps (0 = off)")
    save_state: bool = _f(True, "save the training state with each checkpoint so --resume can continue")
    sample_prompts: list[str] = _f(
        [],
        "prompts rendered at each save point (PNG in OUTPUT_DIR/samples), or a Kohya prompt file "
        "(.txt/.toml/.json, relative to the config's folder); options --n --w --h --d --s --l",
    )
    sample_every_n_epochs: int = _f(0, "render samples every N epochs (0 = at each save point)")
    sample_sampler: str = _f("ddim", "sampler for samples: ddim, euler, euler_a, dpmsolver++, pndm")
    sample_steps: int = _f(20, "denoising steps per sample")

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> one-line help text."""
        return {f.name: f.metadata["help"] for f in fields(cls)}

    @classmethod
    def defaults(cls) -> TrainConfig:
        """A config with every default (the required paths empty)."""
        return cls()

    @classmethod
    def for_family(cls, family: str, **values: Any) -> TrainConfig:
        """The defaults for a base model of ``family`` ("sd1", "sd2", "sdxl"; see :data:`FAMILY_DEFAULTS`), then
        ``values``."""
        return cls(**{**FAMILY_DEFAULTS.get(family, {}), **values})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, field order."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "config", ignored: list[str] | None = None
    ) -> TrainConfig:
        """Build from plain data (Kohya-style section tables are flattened); type-checked, not path-checked.

        Kohya sd-scripts settings this trainer does not implement (``xformers``, ``flip_aug``, ...) are skipped and
        their names appended to ``ignored``, so a Kohya config loads; any other unknown key is an error.
        """
        flat = _flatten(data, source)
        known = {f.name: f for f in fields(cls)}
        for key in [k for k in flat if k not in known and k in KOHYA_UNSUPPORTED]:
            del flat[key]
            if ignored is not None:
                ignored.append(key)
        unknown = [key for key in flat if key not in known]
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"{source}: unknown setting '{key}'{hint}")
        values = {name: _coerce(name, value, known[name], source) for name, value in flat.items()}
        return cls(**values)

    def validate(self, check_paths: bool = True) -> TrainConfig:
        """Raise :class:`ConfigError` on the first problem; return self."""
        _validate(self, check_paths)
        return self


#: Defaults that depend on the base model's family (every other default is the same for all). SDXL follows Kohya's
#: sdxl_train.py and its documentation: 1024 px, buckets from 256 (Kohya's min_bucket_reso) in steps of 64, up to
#: 2048 so that SDXL's own portrait and landscape buckets (832 x 1216, 1216 x 832, ...) exist (Kohya's bare default
#: of 1024 would cap them at the resolution).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "sdxl": {"resolution": 1024, "min_bucket_reso": 256, "max_bucket_reso": 2048, "bucket_reso_steps": 64},
}


#: Kohya sd-scripts (train_db.py and its shared arguments) and kohya_ss GUI settings that this trainer does not
#: implement: a Kohya config with them still loads, and the trainer names them in a notice.
KOHYA_UNSUPPORTED = frozenset(
    """
    xformers mem_eff_attn sdpa full_fp16 fp8_base lowram highvram no_half_vae vae_batch_size
    logging_dir log_with log_prefix log_tracker_name log_tracker_config wandb_api_key wandb_run_name
    log_config console_log_level console_log_file console_log_simple
    max_data_loader_n_workers persistent_data_loader_workers ddp_timeout ddp_gradient_as_bucket_view
    ddp_static_graph save_n_epoch_ratio save_last_n_epochs save_last_n_epochs_state save_last_n_steps
    save_last_n_steps_state save_state_on_train_end resume huggingface_repo_id huggingface_repo_type
    huggingface_path_in_repo huggingface_token huggingface_repo_visibility save_state_to_huggingface
    resume_from_huggingface async_upload tokenizer_cache_dir color_aug flip_aug face_crop_aug_range random_crop
    debug_dataset caption_dropout_every_n_epochs caption_tag_dropout_rate caption_prefix caption_suffix
    caption_separator weighted_captions dataset_config in_json dataset_repeats token_warmup_min
    token_warmup_step secondary_separator enable_wildcard optimizer_args lr_scheduler_args
    lr_scheduler_num_cycles lr_scheduler_power lr_scheduler_type lr_decay_steps lr_scheduler_timescale
    lr_scheduler_min_lr_ratio noise_offset_random_strength multires_noise_iterations multires_noise_discount
    adaptive_noise_scale ip_noise_gamma ip_noise_gamma_random_strength
    scale_v_pred_loss_like_noise_pred v_pred_like_loss debiased_estimation_loss loss_type huber_schedule
    huber_c min_timestep max_timestep sample_at_first sample_every_n_steps no_token_padding training_comment
    config_file output_config metadata_title metadata_author metadata_description metadata_license
    metadata_tags use_8bit_adam use_lion_optimizer masked_loss alpha_mask use_safetensors
    max_token_length_warning mixed_precision_vae save_every_n_epochs_state
    cache_text_encoder_outputs_to_disk no_half_vae diffusers_xformers block_lr fused_optimizer_groups
    """.split()
)

_CHOICES = {
    "mixed_precision": ("no", "fp16", "bf16"),
    "save_precision": ("float", "fp16", "bf16"),
    "save_model_as": ("safetensors", "diffusers"),
    "optimizer_type": ("AdamW", "AdamW8bit", "Adafactor"),
    "lr_scheduler": (
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
    ),
    "sample_sampler": ("ddim", "euler", "euler_a", "dpmsolver++", "pndm"),
    "max_token_length": (75, 150, 225),
    "caption_extension": None,
}
_NON_NEGATIVE = (
    "max_train_epochs",
    "max_train_steps",
    "keep_tokens",
    "lr_warmup_steps",
    "save_every_n_epochs",
    "save_every_n_steps",
    "sample_every_n_epochs",
    "learning_rate_te",
    "noise_offset",
    "min_snr_gamma",
    "max_grad_norm",
    "prior_loss_weight",
    "seed",
)
_POSITIVE = (
    "resolution",
    "train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "clip_skip",
    "sample_steps",
)


def _validate(c: TrainConfig, check_paths: bool) -> None:
    for name, choices in _CHOICES.items():
        if choices is not None and getattr(c, name) not in choices:
            allowed = ", ".join(str(x) for x in choices)
            raise ConfigError(f"{name} = {getattr(c, name)!r} is not one of: {allowed}")
    for name in _NON_NEGATIVE:
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} must be 0 or more, got {getattr(c, name)}")
    for name in _POSITIVE:
        if getattr(c, name) <= 0:
            raise ConfigError(f"{name} must be more than 0, got {getattr(c, name)}")
    if c.stop_text_encoder_training < -1:
        raise ConfigError(
            "stop_text_encoder_training must be -1 (never train it), 0 (see sensitivity) or a step"
        )
    if not 0.0 <= c.text_encoder_sensitivity <= 1.0:
        raise ConfigError(
            f"text_encoder_sensitivity is a fraction of the steps (0..1), got {c.text_encoder_sensitivity}"
        )
    if not 0.0 <= c.caption_dropout_rate <= 1.0:
        raise ConfigError(f"caption_dropout_rate is a probability (0..1), got {c.caption_dropout_rate}")
    for name in ("learning_rate_te1", "learning_rate_te2"):
        if getattr(c, name) < 0 and getattr(c, name) != -1:
            raise ConfigError(
                f"{name} must be -1 (same as learning_rate), 0 (frozen) or a rate, got {getattr(c, name)}"
            )
    if c.cache_text_encoder_outputs and c.train_text_encoder:
        raise ConfigError(
            "cache_text_encoder_outputs needs frozen text encoders: turn off train_text_encoder"
        )
    if c.cache_text_encoder_outputs and (c.shuffle_caption or c.caption_dropout_rate > 0):
        raise ConfigError(
            "cache_text_encoder_outputs encodes each caption once: turn off shuffle_caption and caption_dropout_rate"
        )
    if c.full_bf16 and c.mixed_precision != "bf16":
        raise ConfigError("full_bf16 needs mixed_precision bf16")
    if c.fused_backward_pass and c.optimizer_type != "Adafactor":
        raise ConfigError("fused_backward_pass needs optimizer_type Adafactor")
    if c.fused_backward_pass and c.gradient_accumulation_steps > 1:
        raise ConfigError(
            "fused_backward_pass updates at every backward: set gradient_accumulation_steps to 1"
        )
    if c.fused_backward_pass and c.mixed_precision == "fp16":
        raise ConfigError("fused_backward_pass cannot unscale fp16 gradients: use mixed_precision bf16 or no")
    if c.max_train_epochs == 0 and c.max_train_steps == 0:
        raise ConfigError("set max_train_epochs or max_train_steps (both are 0)")
    if c.bucket_reso_steps % 8 or c.bucket_reso_steps <= 0:
        raise ConfigError(f"bucket_reso_steps must be a positive multiple of 8, got {c.bucket_reso_steps}")
    if c.resolution % 8:
        raise ConfigError(f"resolution must be a multiple of 8, got {c.resolution}")
    if c.enable_bucket and not 0 < c.min_bucket_reso <= c.resolution <= c.max_bucket_reso:
        raise ConfigError(
            f"buckets need min_bucket_reso <= resolution <= max_bucket_reso, got "
            f"{c.min_bucket_reso} <= {c.resolution} <= {c.max_bucket_reso}"
        )
    if not c.caption_extension.startswith("."):
        raise ConfigError(f"caption_extension must start with a dot, got {c.caption_extension!r}")
    if not c.output_name or "/" in c.output_name or "\\" in c.output_name:
        raise ConfigError(f"output_name must be a plain file name, got {c.output_name!r}")
    if check_paths:
        _check_paths(c)


def _check_paths(c: TrainConfig) -> None:
    import importlib.util

    if c.optimizer_type == "AdamW8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "optimizer_type AdamW8bit needs bitsandbytes (pip install bitsandbytes; CUDA only), or use AdamW"
        )
    if not c.pretrained_model_name_or_path:
        raise ConfigError("pretrained_model_name_or_path is not set (a local model file or diffusers folder)")
    if not Path(c.pretrained_model_name_or_path).exists():
        raise ConfigError(f"base model not found: {c.pretrained_model_name_or_path}")
    if c.vae and not Path(c.vae).exists():
        raise ConfigError(f"vae not found: {c.vae}")
    if not c.train_data_dir:
        raise ConfigError("train_data_dir is not set (a folder in Kohya layout)")
    if not Path(c.train_data_dir).is_dir():
        raise ConfigError(f"train_data_dir is not a folder: {c.train_data_dir}")
    if c.reg_data_dir and not Path(c.reg_data_dir).is_dir():
        raise ConfigError(f"reg_data_dir is not a folder: {c.reg_data_dir}")
    if c.sample_prompts:
        from curator.settings.prompts import load_sample_prompts

        # A missing or malformed prompt file fails now, not at the first save point.
        load_sample_prompts(c.sample_prompts)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _flatten(data: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for inner_key, inner in items:
            if isinstance(inner, dict):
                raise ConfigError(f"{source}: nested table '{key}.{inner_key}' is not a setting")
            if inner_key in flat:
                raise ConfigError(f"{source}: setting '{inner_key}' is given twice")
            flat[inner_key] = inner
    return flat


def _coerce(name: str, value: Any, spec: dataclasses.Field, source: str) -> Any:
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc,operator]
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        kind, "a list of strings"
    )
    raise ConfigError(f"{source}: {name} must be {expected}, got {value!r}")


def read_config(path: Path, ignored: list[str] | None = None) -> TrainConfig:
    """Read a TOML config; relative paths in it stay as written (relative to the working directory), except a prompt
    file in ``sample_prompts``, which is relative to the config's folder (as a Kohya user expects). Kohya settings
    we do not implement are skipped and named in ``ignored``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    config = TrainConfig.from_dict(data, source=str(path), ignored=ignored)
    config.sample_prompts = [_beside(path, entry) for entry in config.sample_prompts]
    return config


def _beside(config_path: Path, entry: str) -> str:
    """A relative prompt-file entry as a path from the working directory (it was written relative to the config)."""
    from curator.settings.prompts import is_prompt_file

    if not is_prompt_file(entry) or Path(entry.strip()).is_absolute():
        return entry
    return str(config_path.parent / entry.strip())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def config_to_toml(config: TrainConfig) -> str:
    """The config as TOML text: every field, each with its help line as a comment above it."""
    lines = ["# dreamcurate DreamBooth training config (Kohya sd-scripts setting names)", ""]
    for f in fields(config):
        lines.append(f"# {f.metadata['help']}")
        lines.append(f"{f.name} = {_toml_value(getattr(config, f.name))}")
    return "\n".join(lines) + "\n"


def write_config(config: TrainConfig, path: Path) -> None:
    """Write ``config`` to ``path`` atomically as TOML (every field, defaults included)."""
    atomic_write_text(Path(path), config_to_toml(config))
