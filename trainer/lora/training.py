"""The loop's LoRA call sites: adapters on the loaded model, which parameters train, and the saved file.

Example::

    layers = wrap(model, config)            # in place of training the whole model
    save_checkpoint(model, config, path, metadata, data)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.settings.config import TrainConfig
from trainer.lora.files import base_model_metadata, network_metadata, tag_frequency, write_lora
from trainer.lora.network import Layer, adapter_parameters, attach, kohya_tensors


def wrap(model: Any, config: TrainConfig) -> list[Layer]:
    """Freeze the base model and add the config's adapters (see ``trainer.lora.network.attach``)."""
    return attach(model, config)


def trains_text_encoder(config: TrainConfig) -> bool:
    """Whether a LoRA run has text-encoder adapters."""
    return not config.network_train_unet_only


def set_text_encoder_trainable(text_encoder: Any, trainable: bool) -> None:
    """Only the adapters of the text encoder train (its own weights stay frozen)."""
    text_encoder.requires_grad_(False)
    for param in adapter_parameters(text_encoder):
        param.requires_grad_(trainable)


def learning_rates(config: TrainConfig) -> tuple[float, float]:
    """(UNet, text encoder) learning rates of a LoRA run: unet_lr / text_encoder_lr, else learning_rate (Kohya)."""
    return config.unet_lr or config.learning_rate, config.text_encoder_lr or config.learning_rate


def dataset_metadata(data: Any) -> dict[str, str]:
    """Kohya's dataset metadata of the training data: tag frequency and image counts per folder."""
    from trainer.data import item_caption

    items = data.dataset.items
    dirs: dict[str, dict[str, int]] = {}
    for item in items:
        entry = dirs.setdefault(item.path.parent.name, {"n_repeats": item.repeats, "img_count": 0})
        entry["img_count"] += 1
    train = {k: v for k, v in dirs.items() if any(i.path.parent.name == k and not i.is_reg for i in items)}
    return {
        "ss_tag_frequency": json.dumps(tag_frequency((i.path.parent.name, item_caption(i)) for i in items)),
        "ss_dataset_dirs": json.dumps(train),
        "ss_reg_dataset_dirs": json.dumps({k: v for k, v in dirs.items() if k not in train}),
        "ss_num_train_images": str(sum(1 for i in items if not i.is_reg)),
        "ss_num_reg_images": str(sum(1 for i in items if i.is_reg)),
    }


def training_metadata(config: TrainConfig, family: str, v_parameterization: bool) -> dict[str, str]:
    """The run's settings under Kohya's ``ss_*`` names (values as Kohya writes them: ``str()`` of each)."""
    unet_lr, te_lr = learning_rates(config)
    return {
        **network_metadata(
            config.network_dim,
            config.network_alpha,
            config.conv_dim,
            config.conv_alpha,
            family,
            v_parameterization,
        ),
        **base_model_metadata(Path(config.pretrained_model_name_or_path)),
        "ss_network_dropout": str(config.network_dropout or None),
        "ss_learning_rate": str(config.learning_rate),
        "ss_unet_lr": str(unet_lr),
        "ss_text_encoder_lr": str(te_lr),
        "ss_output_name": config.output_name,
        "ss_resolution": str((config.resolution, config.resolution)),
        "ss_seed": str(config.seed),
        "ss_clip_skip": str(config.clip_skip),
        "ss_max_token_length": str(config.max_token_length),
        "ss_mixed_precision": config.mixed_precision,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_optimizer": config.optimizer_type,
        "ss_noise_offset": str(config.noise_offset or None),
        "ss_min_snr_gamma": str(config.min_snr_gamma or None),
        "ss_keep_tokens": str(config.keep_tokens),
        "ss_shuffle_caption": str(config.shuffle_caption),
        "ss_enable_bucket": str(config.enable_bucket),
        "ss_batch_size_per_device": str(config.train_batch_size),
        "ss_gradient_accumulation_steps": str(config.gradient_accumulation_steps),
    }


def save_checkpoint(model: Any, config: TrainConfig, path: Path, metadata: dict[str, str], data: Any) -> Path:
    """Write the trained adapters of ``model`` (unwrapped modules) as a Kohya-format LoRA at ``path``."""
    full = {
        **metadata,
        **training_metadata(config, model.family, model.v_parameterization),
        **dataset_metadata(data),
    }
    return write_lora(path, kohya_tensors(model.unet, model.text_encoder), full, config.save_precision)


def register_state_hooks(accelerator: Any) -> None:
    """Resume states of a LoRA run hold the adapters only (megabytes, not the frozen model's gigabytes): the base
    weights come from the base model file again when a run resumes (``load_state(strict=False)``)."""

    def keep_adapters(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
        for state in weights:
            for key in [k for k in state if ".lora_A." not in k and ".lora_B." not in k]:
                del state[key]

    accelerator.register_save_state_pre_hook(keep_adapters)
