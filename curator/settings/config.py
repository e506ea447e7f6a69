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
    v2: bool = _f(False, "the base model is SD 2.x (Kohya's flag; checked against the weights, which tell)")
    v_parameterization: bool = _f(
        False, "train with v-prediction (SD 2.x 768-v, NoobAI-style SDXL models); epsilon otherwise"
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
    caption_dropout_every_n_epochs: int = _f(0, "train every N-th epoch with empty captions (0 = never)")
    caption_tag_dropout_rate: float = _f(
        0.0, "probability of dropping each tag that keep_tokens does not keep"
    )
    caption_prefix: str = _f("", "text put before every caption (with a space), before shuffling")
    caption_suffix: str = _f("", "text put after every caption (with a space), before shuffling")
    flip_aug: bool = _f(
        False, "flip half the images horizontally at random (with cache_latents: both are cached)"
    )
    random_crop: bool = _f(
        False, "crop at a random place instead of the centre (needs cache_latents = false)"
    )
    max_data_loader_n_workers: int = _f(8, "threads decoding images (at most the CPU count; 0 = in the loop)")
    validation_split: float = _f(
        0.0, "fraction of each concept's images held out for the validation loss (0 = none), chosen by seed"
    )
    validate_every_n_steps: int = _f(
        0, "also compute the validation loss every N optimizer steps (0 = at save points only)"
    )
    max_token_length: int = _f(75, "CLIP tokens per caption: 75, 150 or 225 (encoded in 75-token chunks)")
    # -- schedule
    max_train_epochs: int = _f(
        200, "epochs to train; wins over max_train_steps, as in Kohya (0 = use max_train_steps)"
    )
    max_train_steps: int = _f(0, "optimizer steps to train when max_train_epochs is 0")
    train_batch_size: int = _f(1, "images per batch (all from one bucket)")
    gradient_accumulation_steps: int = _f(1, "batches per optimizer step")
    learning_rate: float = _f(2e-6, "UNet learning rate")
    learning_rate_te: float | None = _f(
        None,
        "text encoder learning rate (unset = learning_rate; 0 = the text encoder does not learn)",
        kind=float,
    )
    lr_scheduler: str = _f(
        "constant", "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial"
    )
    lr_warmup_steps: int = _f(0, "optimizer steps of linear warm-up (not with constant, as in Kohya)")
    lr_scheduler_num_cycles: int = _f(1, "restarts of cosine_with_restarts")
    lr_scheduler_power: float = _f(1.0, "power of the polynomial schedule")
    optimizer_type: str = _f(
        "AdamW", "AdamW, AdamW8bit, Lion, Lion8bit, Adafactor, Prodigy, SGDNesterov, SGDNesterov8bit"
    )
    optimizer_args: list[str] = _f(
        [], "optimizer options as key=value (weight_decay=0.01, betas=0.9,0.999, relative_step=False, ...)"
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
    learning_rate_te1: float | None = _f(
        None,
        "SDXL text encoder 1 (CLIP ViT-L) learning rate (unset = learning_rate, 0 = keep it frozen)",
        kind=float,
    )
    learning_rate_te2: float | None = _f(
        None,
        "SDXL text encoder 2 (OpenCLIP bigG) learning rate (unset = learning_rate, 0 = keep it frozen)",
        kind=float,
    )
    cache_text_encoder_outputs: bool = _f(
        False,
        "SDXL: encode each caption once with the frozen text encoders, then move them off the GPU "
        "(needs shuffle_caption off and no caption dropout, as Kohya)",
    )
    stop_text_encoder_training: int | None = _f(
        None,
        "optimizer step at which the text encoder stops (unset = see sensitivity; 0 or -1 = never train it)",
        kind=int,
    )
    text_encoder_sensitivity: float = _f(
        0.0, "stop the text encoder after this fraction of all optimizer steps (0 = train it to the end)"
    )
    # -- LoRA (Kohya's train_network.py names and defaults; network_module empty = DreamBooth, the whole model)
    network_module: str = _f(
        "",
        "networks.lora trains a LoRA (a small file of adapters) instead of the whole model ('' = DreamBooth)",
    )
    network_dim: int = _f(4, "LoRA rank of linear and 1x1 conv layers (Kohya's default 4; 8-128 are common)")
    network_alpha: float = _f(1.0, "LoRA alpha: adapters are scaled by network_alpha / network_dim")
    network_dropout: float = _f(0.0, "LoRA dropout probability (0 = off)")
    network_train_unet_only: bool = _f(False, "LoRA: adapt only the UNet")
    network_train_text_encoder_only: bool = _f(False, "LoRA: adapt only the text encoder")
    network_weights: str = _f(
        "", "LoRA file whose weights the adapters start from, to continue training ('' = new)"
    )
    unet_lr: float = _f(0.0, "LoRA: the UNet adapters' learning rate (0 = learning_rate)")
    text_encoder_lr: float = _f(0.0, "LoRA: the text-encoder adapters' learning rate (0 = learning_rate)")
    conv_dim: int = _f(0, "LoRA rank of 3x3 conv layers (0 = convs not adapted, Kohya's default)")
    conv_alpha: float = _f(1.0, "LoRA alpha of 3x3 conv layers")
    # -- numerics
    mixed_precision: str = _f("fp16", "no, fp16 or bf16 (fp16 falls back to no on a CPU)")
    full_fp16: bool = _f(False, "keep the weights in fp16 too (less memory; needs mixed_precision fp16)")
    full_bf16: bool = _f(False, "keep the weights in bf16 too (less memory; needs mixed_precision bf16)")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the UNet and text encoder")
    noise_offset: float = _f(0.0, "noise offset (0 = off); about 0.05-0.1 widens the brightness range")
    zero_terminal_snr: bool = _f(
        False, "rescale the noise schedule to zero SNR at the last step (Lin et al. 2023)"
    )
    min_timestep: int = _f(0, "smallest timestep trained")
    max_timestep: int = _f(1000, "timesteps are drawn below this (SD's schedule has 1000)")
    loss_type: str = _f("l2", "l2 (MSE), l1, huber or smooth_l1")
    huber_schedule: str = _f("snr", "huber_c over the timesteps: constant, exponential or snr")
    huber_c: float = _f(0.1, "Huber loss threshold (huber and smooth_l1)")
    huber_scale: float = _f(1.0, "scale of huber_c (constant and exponential schedules)")
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
    log_with: str = _f(
        "", "tensorboard: log loss and learning rate to logging_dir ('' = tensorboard if it is set)"
    )
    logging_dir: str = _f("", "folder for the tensorboard logs ('' = no logs)")
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
        cls,
        data: dict[str, Any],
        source: str = "config",
        ignored: list[str] | None = None,
        skip_unsupported: bool = False,
    ) -> TrainConfig:
        """Build from plain data (Kohya-style section tables are flattened); type-checked, not path-checked.

        Kohya sd-scripts settings that change no number here (``xformers``, ``sdpa``, ...) or that are off (``color_aug
        = false``) are dropped silently. One that would change the training and that this trainer does not implement
        is an error naming it, unless ``skip_unsupported``: then it is dropped and named in ``ignored``. Any other
        unknown key is an error.
        """
        flat = _flatten(data, source)
        _take_network_args(flat, source)
        known = {f.name: f for f in fields(cls)}
        for key in [k for k in flat if k not in known and (k in KOHYA_INERT or k in KOHYA_UNSUPPORTED)]:
            value = flat.pop(key)
            if key in KOHYA_INERT or _is_off(key, value):
                continue
            if not skip_unsupported:
                raise ConfigError(
                    f"{source}: Kohya setting {key} = {_toml_value(value)} is not implemented by this trainer "
                    f"(remove it, or pass --skip-unsupported to train without it)"
                )
            if ignored is not None:
                ignored.append(key)
        unknown = [key for key in flat if key not in known]
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"{source}: unknown setting '{key}'{hint}")
        if "max_train_steps" in flat and "max_train_epochs" not in flat:
            # A file that names only the step count means it (Kohya's max_train_epochs is unset by default; ours
            # would otherwise win with 200 epochs)
            flat["max_train_epochs"] = 0
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


#: Kohya sd-scripts (train_db.py and its shared arguments) and kohya_ss GUI settings that change no number here: the
#: attention kernel (we always use PyTorch's SDPA), memory and logging knobs, the GUI's own ``epoch`` (sd-scripts
#: reads max_train_epochs), options that only matter with an option of the next set turned on.
KOHYA_INERT = frozenset(
    """
    xformers mem_eff_attn sdpa lowram highvram no_half_vae vae_batch_size persistent_data_loader_workers
    ddp_timeout ddp_gradient_as_bucket_view ddp_static_graph console_log_level console_log_file console_log_simple
    tokenizer_cache_dir max_token_length_warning dynamo_backend epoch use_safetensors async_upload log_prefix
    log_tracker_name multires_noise_discount token_warmup_min ip_noise_gamma_random_strength wandb_api_key
    wandb_run_name huggingface_repo_type huggingface_path_in_repo huggingface_token huggingface_repo_visibility
    """.split()
)

#: Kohya settings that this trainer does not implement: accepted when off (false, 0, "", []), else an error naming
#: them (``--skip-unsupported`` trains without them and names them in a notice).
KOHYA_UNSUPPORTED = frozenset(
    """
    network_args dim_from_weights scale_weight_norms base_weights base_weights_multiplier no_metadata
    fp8_base log_tracker_config log_config save_n_epoch_ratio save_last_n_epochs save_last_n_epochs_state
    save_last_n_steps save_last_n_steps_state save_state_on_train_end resume huggingface_repo_id
    save_state_to_huggingface resume_from_huggingface color_aug face_crop_aug_range debug_dataset caption_separator
    weighted_captions dataset_config in_json dataset_repeats token_warmup_step secondary_separator enable_wildcard
    lr_scheduler_args lr_scheduler_type lr_decay_steps lr_scheduler_timescale lr_scheduler_min_lr_ratio
    noise_offset_random_strength multires_noise_iterations adaptive_noise_scale ip_noise_gamma
    scale_v_pred_loss_like_noise_pred v_pred_like_loss debiased_estimation_loss sample_at_first
    sample_every_n_steps no_token_padding training_comment config_file output_config metadata_title
    metadata_author metadata_description metadata_license metadata_tags use_8bit_adam use_lion_optimizer
    masked_loss alpha_mask mixed_precision_vae save_every_n_epochs_state use_wandb
    cache_text_encoder_outputs_to_disk fused_optimizer_groups
    noise_offset_type
    """.split()
)

#: Kohya's value for "off" where it is not false / 0 / "" / [].
_KOHYA_OFF = {"caption_separator": ",", "noise_offset_type": "Original", "lr_scheduler_type": None}


def _is_off(key: str, value: Any) -> bool:
    if key in _KOHYA_OFF and value == _KOHYA_OFF[key]:
        return True
    return value is False or value == "" or value == [] or (isinstance(value, (int, float)) and value == 0)


_CHOICES = {
    "mixed_precision": ("no", "fp16", "bf16"),
    "save_precision": ("float", "fp16", "bf16"),
    "save_model_as": ("safetensors", "diffusers"),
    "lr_scheduler": (
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "adafactor",
    ),
    "loss_type": ("l2", "l1", "huber", "smooth_l1"),
    "huber_schedule": ("constant", "exponential", "snr"),
    "log_with": ("", "tensorboard"),
    "sample_sampler": ("ddim", "euler", "euler_a", "dpmsolver++", "pndm"),
    "network_module": ("", "networks.lora"),
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
    "noise_offset",
    "min_timestep",
    "caption_dropout_every_n_epochs",
    "max_data_loader_n_workers",
    "validate_every_n_steps",
    "min_snr_gamma",
    "max_grad_norm",
    "prior_loss_weight",
    "seed",
    "network_dim",
    "network_alpha",
    "network_dropout",
    "unet_lr",
    "text_encoder_lr",
    "conv_dim",
    "conv_alpha",
)
_POSITIVE = (
    "resolution",
    "train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "clip_skip",
    "sample_steps",
    "huber_c",
    "huber_scale",
    "lr_scheduler_num_cycles",
)

#: Kohya's optimizer names (matched without case, as Kohya does) -> the optional extra that provides it
OPTIMIZERS = {
    "adamw": "",
    "adamw8bit": "bitsandbytes",
    "lion": "lion-pytorch",
    "lion8bit": "bitsandbytes",
    "adafactor": "",  # transformers' Adafactor; transformers is a dependency
    "prodigy": "prodigyopt",
    "sgdnesterov": "",
    "sgdnesterov8bit": "bitsandbytes",
}


#: upper bounds: past these a value is a typo or an attack, and would fail deep inside a library with a traceback
_AT_MOST = {
    "seed": 2**32 - 1,  # numpy's and torch's seeding take 32 bits
    "clip_skip": 12,  # SD 1.x's text encoder has 12 layers (SD 2.x's 23; skipping more leaves nothing)
    "sample_steps": 1000,  # the schedulers' training timesteps
    "resolution": 4096,
    "min_bucket_reso": 4096,
    "max_bucket_reso": 4096,
    "train_batch_size": 1024,
    "gradient_accumulation_steps": 1024,
    "keep_tokens": 255,
    "max_train_epochs": 1_000_000,
    "max_train_steps": 100_000_000,
}
#: at least: smaller than this the VAE's 8x downsampling leaves nothing for the UNet to learn from
_AT_LEAST = {"resolution": 64}


def _validate_bounds(c: TrainConfig) -> None:
    for spec in fields(c):
        value = getattr(c, spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{spec.name} must be a finite number, got {value}")
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if isinstance(text, str) and "\x00" in text:
                raise ConfigError(f"{spec.name} holds a NUL character")
    for name, most in _AT_MOST.items():
        if getattr(c, name) > most:
            raise ConfigError(f"{name} must be at most {most:,}, got {getattr(c, name):,}")
    for name, least in _AT_LEAST.items():
        if getattr(c, name) < least:
            raise ConfigError(f"{name} must be at least {least}, got {getattr(c, name)}")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in c.output_name):
        raise ConfigError(
            f"output_name must be a plain file name without control characters, got {c.output_name!r}"
        )


def _validate(c: TrainConfig, check_paths: bool) -> None:
    _validate_bounds(c)
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
    _validate_kohya(c)
    if not 0.0 <= c.text_encoder_sensitivity <= 1.0:
        raise ConfigError(
            f"text_encoder_sensitivity is a fraction of the steps (0..1), got {c.text_encoder_sensitivity}"
        )
    for name in ("caption_dropout_rate", "caption_tag_dropout_rate"):
        if not 0.0 <= getattr(c, name) <= 1.0:
            raise ConfigError(f"{name} is a probability (0..1), got {getattr(c, name)}")
    if not 0.0 <= c.validation_split < 1.0:
        raise ConfigError(f"validation_split is a fraction of each concept (0..1), got {c.validation_split}")
    _validate_sdxl(c)
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
    from curator.dataset.discover import check_caption_extension

    try:
        check_caption_extension(c.caption_extension)
    except ValueError as exc:
        raise ConfigError(f"caption_extension: {exc}") from exc
    if not c.output_name or "/" in c.output_name or "\\" in c.output_name:
        raise ConfigError(f"output_name must be a plain file name, got {c.output_name!r}")
    _validate_network(c)
    if check_paths:
        _check_paths(c)


def _validate_kohya(c: TrainConfig) -> None:
    """The checks Kohya's scripts make before training (same refusals, one line each)."""
    if c.optimizer_type.lower() not in OPTIMIZERS:
        raise ConfigError(f"optimizer_type = {c.optimizer_type!r} is not one of: {_OPTIMIZER_NAMES}")
    optimizer_kwargs(c)  # a malformed key=value fails now, not after the model has loaded
    if c.learning_rate_te is not None and c.learning_rate_te < 0:
        raise ConfigError(f"learning_rate_te must be 0 or more, got {c.learning_rate_te}")
    if c.lr_warmup_steps and c.lr_scheduler in ("constant", "adafactor"):
        raise ConfigError(
            f"lr_warmup_steps = {c.lr_warmup_steps} does nothing with lr_scheduler {c.lr_scheduler} (Kohya refuses "
            f"it too): use lr_scheduler constant_with_warmup, or lr_warmup_steps = 0"
        )
    if c.lr_scheduler == "adafactor" and c.optimizer_type.lower() != "adafactor":
        raise ConfigError("lr_scheduler adafactor works only with optimizer_type Adafactor")
    if not c.min_timestep <= c.max_timestep <= 1000:
        raise ConfigError(
            f"timesteps need 0 <= min_timestep <= max_timestep <= 1000, got {c.min_timestep}..{c.max_timestep}"
        )
    if c.full_fp16 and c.mixed_precision != "fp16":
        raise ConfigError("full_fp16 needs mixed_precision fp16 (as in Kohya)")
    if c.full_bf16 and c.mixed_precision != "bf16":
        raise ConfigError("full_bf16 needs mixed_precision bf16 (as in Kohya)")
    if c.random_crop and c.cache_latents:
        raise ConfigError(
            "random_crop needs cache_latents = false (a cached latent has one crop; Kohya refuses it)"
        )
    if c.log_with == "tensorboard" and not c.logging_dir:
        raise ConfigError("log_with tensorboard needs logging_dir (as in Kohya)")


def _validate_sdxl(c: TrainConfig) -> None:
    """The SDXL settings' refusals (Kohya's sdxl_train.py makes the same)."""
    for name in ("learning_rate_te1", "learning_rate_te2"):
        if getattr(c, name) is not None and getattr(c, name) < 0:
            raise ConfigError(
                f"{name} must be 0 (frozen) or more (unset = learning_rate), got {getattr(c, name)}"
            )
    if c.cache_text_encoder_outputs and c.train_text_encoder:
        raise ConfigError(
            "cache_text_encoder_outputs needs frozen text encoders: turn off train_text_encoder"
        )
    if c.cache_text_encoder_outputs and (c.shuffle_caption or c.caption_dropout_rate > 0):
        raise ConfigError(
            "cache_text_encoder_outputs encodes each caption once: turn off shuffle_caption and caption_dropout_rate"
        )
    if c.fused_backward_pass and c.optimizer_type.lower() != "adafactor":
        raise ConfigError("fused_backward_pass needs optimizer_type Adafactor")
    if c.fused_backward_pass and c.gradient_accumulation_steps > 1:
        raise ConfigError(
            "fused_backward_pass updates at every backward: set gradient_accumulation_steps to 1"
        )
    if c.fused_backward_pass and c.mixed_precision == "fp16":
        raise ConfigError("fused_backward_pass cannot unscale fp16 gradients: use mixed_precision bf16 or no")


#: optional dependency -> the pyproject extra that installs it
_EXTRA = {"bitsandbytes": "bnb", "lion-pytorch": "lion", "prodigyopt": "prodigy"}


def optimizer_kwargs(c: TrainConfig) -> dict[str, Any]:
    """``optimizer_args`` as keyword arguments, read as Kohya reads them: ``key=value`` with a Python literal value
    (``betas=0.9,0.999`` is a tuple, ``relative_step=False`` a bool). An entry may hold several pairs separated by
    spaces (kohya_ss's text box)."""
    import ast

    kwargs: dict[str, Any] = {}
    for pair in (p for arg in c.optimizer_args for p in arg.split()):
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"optimizer_args: {pair!r} is not key=value (e.g. weight_decay=0.01)")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise ConfigError(
                f"optimizer_args: the value of {pair!r} is not a number, tuple or bool"
            ) from exc
    return kwargs


_OPTIMIZER_NAMES = "AdamW, AdamW8bit, Lion, Lion8bit, Adafactor, Prodigy, SGDNesterov, SGDNesterov8bit"


def _validate_network(c: TrainConfig) -> None:
    if not c.network_module:
        lora_only = [n for n in ("unet_lr", "text_encoder_lr", "network_weights") if getattr(c, n)]
        lora_only += [
            n for n in ("network_train_unet_only", "network_train_text_encoder_only") if getattr(c, n)
        ]
        if lora_only:
            raise ConfigError(
                f'{lora_only[0]} applies to LoRA training: set network_module = "networks.lora"'
            )
        return
    if c.network_dim <= 0:
        raise ConfigError(f"network_dim must be more than 0, got {c.network_dim}")
    if c.network_dropout >= 1.0:
        raise ConfigError(f"network_dropout is a probability below 1, got {c.network_dropout}")
    if c.network_train_unet_only and c.network_train_text_encoder_only:
        raise ConfigError("network_train_unet_only and network_train_text_encoder_only exclude each other")
    if c.save_model_as != "safetensors":
        raise ConfigError('a LoRA is saved as one .safetensors file: set save_model_as = "safetensors"')


def _check_paths(c: TrainConfig) -> None:
    import importlib.util

    extra = OPTIMIZERS.get(c.optimizer_type.lower(), "")
    module = {"lion-pytorch": "lion_pytorch"}.get(extra, extra)
    if extra and importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"optimizer_type {c.optimizer_type} needs {extra}: pip install 'dreamcurate[{_EXTRA[extra]}]'"
        )
    if (c.log_with == "tensorboard" or c.logging_dir) and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("logging_dir needs tensorboard: pip install 'dreamcurate[tensorboard]'")
    if not c.pretrained_model_name_or_path:
        raise ConfigError("pretrained_model_name_or_path is not set (a local model file or diffusers folder)")
    if not Path(c.pretrained_model_name_or_path).exists():
        raise ConfigError(f"base model not found: {c.pretrained_model_name_or_path}")
    if c.network_weights and not Path(c.network_weights).is_file():
        raise ConfigError(f"network_weights not found: {c.network_weights}")
    if c.vae and not Path(c.vae).exists():
        raise ConfigError(f"vae not found: {c.vae}")
    if not c.train_data_dir:
        raise ConfigError("train_data_dir is not set (a folder in Kohya layout)")
    if not Path(c.train_data_dir).is_dir():
        raise ConfigError(f"train_data_dir is not a folder: {c.train_data_dir}")
    if c.reg_data_dir and not Path(c.reg_data_dir).is_dir():
        raise ConfigError(f"reg_data_dir is not a folder: {c.reg_data_dir}")
    if c.reg_data_dir:
        train, reg = Path(c.train_data_dir).resolve(), Path(c.reg_data_dir).resolve()
        if train == reg or reg in train.parents:
            raise ConfigError(
                f"reg_data_dir {c.reg_data_dir} is (or holds) the train_data_dir {c.train_data_dir}; "
                "give a separate folder"
            )
    if c.sample_prompts:
        from curator.settings.prompts import load_sample_prompts

        # A missing or malformed prompt file fails now, not at the first save point.
        load_sample_prompts(c.sample_prompts)


def _take_network_args(flat: dict[str, Any], source: str) -> None:
    """Kohya passes conv_dim / conv_alpha inside ``network_args = ["conv_dim=4", ...]``: take those two out as our
    settings (a setting given on its own wins); the other network_args stay for the notice of unsupported ones."""
    entries = flat.get("network_args")
    if not isinstance(entries, list):
        return
    rest = []
    for entry in entries:
        key, _, value = str(entry).partition("=")
        key = key.strip()
        if key in ("conv_dim", "conv_alpha") and value.strip():
            try:
                number = float(value) if key == "conv_alpha" else int(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: network_args {entry!r}: {key} must be a number") from exc
            flat.setdefault(key, number)
        else:
            rest.append(entry)
    if rest:
        flat["network_args"] = rest
    else:
        del flat["network_args"]


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


def field_kind(spec: dataclasses.Field) -> type:
    """The value type of a field (``kind`` in its metadata for a field whose default is unset)."""
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc,operator]
    return spec.metadata.get("kind", type(default))


def _coerce(name: str, value: Any, spec: dataclasses.Field, source: str) -> Any:
    kind = field_kind(spec)
    if value is None and spec.default is None:  # an unset setting (from to_dict's plain data)
        return None
    if name == "resolution" and isinstance(value, str):
        value = _square_resolution(value, source)
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


def _square_resolution(text: str, source: str) -> Any:
    """Kohya's ``resolution = "512,512"`` (what kohya_ss writes) as 512; a non-square one is refused."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) in (1, 2) and all(p.isdigit() for p in parts) and len(set(parts)) == 1:
        return int(parts[0])
    raise ConfigError(f"{source}: resolution must be one number or 'N,N' (square), got {text!r}")


def read_config(path: Path, ignored: list[str] | None = None, skip_unsupported: bool = False) -> TrainConfig:
    """Read a TOML config; relative paths in it stay as written (relative to the working directory), except a prompt
    file in ``sample_prompts``, which is relative to the config's folder (as a Kohya user expects). Kohya settings
    we do not implement are an error, or with ``skip_unsupported`` skipped and named in ``ignored``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    config = TrainConfig.from_dict(data, str(path), ignored, skip_unsupported)
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
        value = getattr(config, f.name)
        # TOML has no null: an unset setting is written commented out, as Kohya users leave it out
        lines.append(f"# {f.name} =" if value is None else f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(config: TrainConfig, path: Path) -> None:
    """Write ``config`` to ``path`` atomically as TOML (every field, defaults included)."""
    atomic_write_text(Path(path), config_to_toml(config))
