"""The DreamBooth training loop on accelerate: a handful of short functions (load models, build data, one optimizer
step, save, sample) around one :class:`Run` that holds the state.

It runs exactly the schedule ``curator.plan.steps`` predicts (``curator.plan.steps.schedule``): the same batches, the same
number of optimizer steps, the same text-encoder stop step.

Example::

    result = train(read_config(Path("train.toml")))
    print(result.steps, result.final_path)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.settings.config import ConfigError, TrainConfig
from trainer import checkpoint
from trainer.data import (
    Batch,
    LatentCache,
    TrainingData,
    batch_augments,
    batch_captions,
    build_training_data,
    load_batch_pixels,
    loader_workers,
)
from trainer.events import EVENTS_FILENAME, EventLog
from trainer.latents import cache_all_latents
from trainer.lora import training as lora_training
from trainer.loss import diffusion_loss, min_snr_weights
from trainer.memory import check_fits
from trainer.noise import sample_noise, sample_timesteps, training_scheduler
from trainer.optim import make_lr_scheduler, make_optimizer
from trainer.precision import allow_fp16_gradients, full_precision_dtype
from trainer.startup import stage
from trainer.text import freeze_skipped_layers
from trainer.training_report import write_training_report
from trainer.validation import record_validation

#: test hook: make the loss of this optimizer step NaN (an env var so a subprocess run can be told too)
NAN_AT_STEP_ENV = "DREAMCURATE_TEST_NAN_AT_STEP"


class TrainingError(RuntimeError):
    """Training stopped; the message is one line for the user (the last good checkpoint is kept)."""


@dataclass
class TrainResult:
    """What a run did. ``steps``: optimizer steps done in total (resumed ones included); ``te_steps``: steps in which
    the text encoder was updated; ``optimizer_steps`` / ``te_optimizer_steps``: the step counts the optimizer itself
    holds for the UNet's and the text encoder's parameters (what really happened); ``losses``: the loss of each
    optimizer step run by this call."""

    steps: int
    epochs: int
    te_steps: int
    te_stop_step: int | None
    final_path: Path | None
    checkpoints: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    optimizer_steps: int = 0
    te_optimizer_steps: int = 0
    main_process: bool = True
    validation_losses: list[tuple[int, float]] = field(
        default_factory=list
    )  # (step, loss) on the main process


@dataclass
class Run:
    """Everything a running training holds (the loop's state, passed to its small functions)."""

    config: TrainConfig
    accelerator: Any
    model: Any  # model_io.SDModel with the unwrapped modules
    unet: Any  # prepared (maybe DDP-wrapped)
    text_encoder: Any  # prepared when it trains, else the plain module
    optimizer: Any
    lr_scheduler: Any
    data: TrainingData
    cache: LatentCache | None
    events: EventLog
    result: TrainResult
    te_training: bool
    step: int = 0
    epoch: int = 1
    groups_done: int = 0
    nan_at_step: int | None = None
    last_checkpoint: Path | None = None
    last_saved_step: int = -1
    noise_scheduler: Any = None  # the schedule that noises latents (zero_terminal_snr rescales a copy)
    text_encoder_2: Any = None  # SDXL's second encoder (prepared when it trains)
    text_cache: Any = None  # SDXL's cached text-encoder outputs (trainer.sdxl.TextCache)

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)


# ---- set-up -----------------------------------------------------------------------------------------------------


def make_accelerator(config: TrainConfig, events: list[str]) -> Any:
    """An Accelerator with the config's mixed precision (fp16 needs CUDA: on a CPU it falls back to no)."""
    import torch
    from accelerate import Accelerator

    precision = config.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        full = " (and full_fp16)" if config.full_fp16 else ""
        events.append(f"mixed_precision fp16{full} needs a CUDA GPU; training in float32 on the CPU")
        precision = "no"
    # Gradient accumulation is done by the loop itself (groups of batches per epoch, the last group may be short)
    # so the step count equals the plan's ceil(batches / accumulation) exactly.
    log_with, logging_dir = tracker_settings(config)
    return Accelerator(
        mixed_precision=precision, gradient_accumulation_steps=1, log_with=log_with, project_dir=logging_dir
    )


def tracker_settings(config: TrainConfig) -> tuple[str | None, str | None]:
    """accelerate's tracker and its folder, as Kohya sets them: tensorboard when log_with says so or when only
    logging_dir is given; each run in its own ``logging_dir/<date-time>`` folder."""
    if not config.logging_dir:
        return None, None
    return "tensorboard", str(Path(config.logging_dir) / time.strftime("%Y%m%d%H%M%S"))


def load_models(config: TrainConfig) -> Any:
    """The base model (model_io.SDModel), float32, SDPA attention (diffusers' default processor)."""
    from trainer.models import io as model_io

    model = model_io.load_model(
        Path(config.pretrained_model_name_or_path),
        vae=Path(config.vae) if config.vae else None,
        v_parameterization=config.v_parameterization,
    )
    if config.v2 and model.family != "sd2":
        # Kohya builds an SD 2 model for v2 = true and fails on these weights; the weights tell us, so say it plainly
        raise ConfigError(
            f"v2 = true, but {config.pretrained_model_name_or_path} is an SD 1.x model (set v2 = false)"
        )
    if config.zero_terminal_snr and model.family == "sdxl":
        # Recorded, not applied: training rescales a copy (trainer.noise.training_scheduler) and Min-SNR keeps the
        # model's SNRs, as Kohya; the flag makes the saved file carry ComfyUI's "ztsnr" marker and samples use it.
        model.noise_scheduler.register_to_config(rescale_betas_zero_snr=True)
    model.vae.requires_grad_(False)
    if model.text_encoder_2 is not None:
        model.text_encoder_2.requires_grad_(False)
    model.vae.eval()
    return model


def describe_data(data: TrainingData) -> str:
    """One line about the data a run trains: images, buckets, steps."""
    reg = sum(1 for s in data.samples.values() if s.item.is_reg)
    buckets = len({s.bucket for s in data.samples.values()})
    with_reg = f" + {reg} regularization" if reg else ""
    schedule = data.schedule
    return (
        f"{len(data.samples) - reg} training images{with_reg} in {buckets} buckets: {schedule.total_steps} steps "
        f"({schedule.steps_per_epoch} an epoch)"
    )


def check_base_model(config: TrainConfig) -> None:
    """Refuse a wrong base model (LoRA, not a model...) from its header alone, before the data is read.
    A pickled ``.ckpt`` has no header to read cheaply: it is checked when it loads."""
    from trainer.models.info import inspect_model

    base = Path(config.pretrained_model_name_or_path)
    if base.is_dir() or base.suffix.lower() not in (".ckpt", ".pt", ".pth", ".bin"):
        inspect_model(base)


def setup_run(config: TrainConfig, resume: bool, show_progress: bool) -> Run:
    """Load everything, prepare it with accelerate, restore a saved state when resuming."""
    output_dir = Path(config.output_dir)
    notices: list[str] = []
    accelerator = make_accelerator(config, notices)
    if config.sample_prompts:
        from curator.settings.prompts import load_sample_prompts

        load_sample_prompts(config.sample_prompts, notices)  # a bad prompt file stops the run before any work
    progress = checkpoint.latest_progress(output_dir, verify=True) if resume else None
    if resume and progress is None:
        raise ConfigError(f"--resume: no saved training state in {output_dir / checkpoint.STATE_DIRNAME}")
    if progress is not None:
        checkpoint.check_resumable(config, progress)
    if accelerator.is_main_process:
        checkpoint.check_final_target(config)
        output_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_stale_temporaries(output_dir, config.output_name)
    # A fresh run starts a fresh events file (the TUI follows one run); a resumed run continues its file.
    events = EventLog(output_dir / EVENTS_FILENAME if accelerator.is_main_process else None, append=resume)
    for notice in notices:
        events.emit("notice", message=notice)
        if accelerator.is_main_process:
            print(f"notice: {notice}", file=sys.stderr)
    try:
        return _load_and_prepare(config, accelerator, events, progress)
    except Exception as exc:
        events.emit(
            "error",
            step=progress.step if progress else 0,
            epoch=progress.epoch if progress else 0,
            message=str(exc),
            last_checkpoint=progress.last_checkpoint if progress else None,
        )
        events.close()
        raise


def _load_and_prepare(config: TrainConfig, accelerator: Any, events: EventLog, progress: Any) -> Run:
    from accelerate.utils import set_seed

    set_seed(config.seed)
    # A refused model file first (header only), then the data, then the slow load.
    check_base_model(config)
    main = accelerator.is_main_process
    with stage(events, main, "import", "importing diffusers and transformers") as done:
        # seconds of the start-up (diffusers' model modules import its whole model zoo): said, not silent
        from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
        from transformers import CLIPTextModel  # noqa: F401

        done("libraries ready")
    with stage(events, main, "data", f"reading the dataset in {config.train_data_dir}") as done:
        data = build_training_data(config, accelerator.num_processes)
        done(describe_data(data), images=len(data.samples), total_steps=data.schedule.total_steps)
    with stage(events, main, "model", f"loading {config.pretrained_model_name_or_path}") as done:
        model = load_models(config)
        done(f"model loaded ({model.family}{', v-prediction' if model.v_parameterization else ''})")
    layers = getattr(model.text_encoder.config, "num_hidden_layers", config.clip_skip)
    if config.clip_skip > layers:
        raise ConfigError(f"clip_skip {config.clip_skip} is more than the text encoder's {layers} layers")
    schedule = data.schedule
    te_training = schedule.te_stop_step is None or schedule.te_stop_step > 0
    if config.network_module and model.family == "sdxl":
        raise ConfigError("LoRA training of an SDXL base is not supported yet: unset network_module")
    if config.network_module:  # a LoRA: the base frozen, adapters train
        lora_training.wrap(model, config)
        te_training = te_training and lora_training.trains_text_encoder(config)
    check_fits(config, model, accelerator.device, accelerator.mixed_precision, te_training)
    cache = cache_all_latents(model, data, config, accelerator, events) if config.cache_latents else None
    if not config.cache_latents:
        model.vae.to(accelerator.device)
    if config.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    model.unet.train()
    weight_dtype = full_precision_dtype(config, accelerator)
    if (
        weight_dtype is not None
    ):  # Kohya's full_fp16 / full_bf16: the trained weights themselves in half precision
        model.unet.to(weight_dtype)
    notices: list[str] = []
    if model.family == "sdxl":
        unet, text_encoder, text_encoder_2, optimizer, lr_scheduler, text_cache, te_training = _prepare_sdxl(
            config, accelerator, model, data, te_training, weight_dtype, notices
        )
    else:
        text_encoder_2 = text_cache = None
        unet, text_encoder, optimizer, lr_scheduler = _prepare_sd(
            config, accelerator, model, te_training, weight_dtype, notices, schedule.total_steps
        )
    for notice in notices:
        events.emit("notice", message=notice)
        if accelerator.is_main_process:
            print(f"notice: {notice}", file=sys.stderr)
    if weight_dtype is not None and accelerator.scaler is not None:
        allow_fp16_gradients(accelerator.scaler)
    # Not prepared: accelerate would step it once per process; ours steps once per optimizer step. Not registered
    # for checkpointing either: accelerate would pickle it; checkpoint.save_state writes it as JSON.
    if config.network_module:
        lora_training.register_state_hooks(accelerator)
    result = TrainResult(0, schedule.epochs, 0, schedule.te_stop_step, None)
    run = Run(
        config,
        accelerator,
        model,
        unet,
        text_encoder,
        optimizer,
        lr_scheduler,
        data,
        cache,
        events,
        result,
        te_training,
        text_encoder_2=text_encoder_2,
        text_cache=text_cache,
    )
    run.noise_scheduler = training_scheduler(model.noise_scheduler, config.zero_terminal_snr)
    if config.fused_backward_pass:
        from trainer import fused_backward

        if accelerator.num_processes > 1:
            raise ConfigError(
                "fused_backward_pass works on one GPU (gradients are applied before DDP reduces them)"
            )
        fused_backward.install(optimizer, config.max_grad_norm)
    if accelerator.log_with:
        accelerator.init_trackers("dreambooth")  # Kohya's project name; logs "loss", "lr/unet", "loss/epoch"
    nan_env = os.environ.get(NAN_AT_STEP_ENV)
    run.nan_at_step = int(nan_env) if nan_env else None
    if progress is not None:
        restore(run, progress)
    return run


def _prepare_sd(
    config: TrainConfig,
    accelerator: Any,
    model: Any,
    te_training: bool,
    weight_dtype: Any,
    notices: list[str],
    total_steps: int,
) -> tuple[Any, ...]:
    """SD 1.x / 2.x: the text encoder's mode, the optimizer and schedule, accelerate's prepare. Returns (unet,
    text_encoder, optimizer, lr_scheduler)."""
    if config.network_module:
        lora_training.set_text_encoder_trainable(model.text_encoder, te_training)
    else:
        model.text_encoder.requires_grad_(te_training)
    model.text_encoder.train(te_training)
    freeze_skipped_layers(model.text_encoder, config.clip_skip)
    if config.gradient_checkpointing and te_training:
        # transformers 5 renamed it; 4.x only has the old name
        enable = getattr(model.text_encoder, "activation_checkpointing_enable", None)
        (enable or model.text_encoder.gradient_checkpointing_enable)()
    if weight_dtype is not None:
        model.text_encoder.to(weight_dtype)
    optimizer = make_optimizer(config, model.unet, model.text_encoder if te_training else None, notices)
    lr_scheduler = make_lr_scheduler(config, optimizer, total_steps)
    if te_training:
        unet, text_encoder, optimizer = accelerator.prepare(model.unet, model.text_encoder, optimizer)
    else:
        unet, optimizer = accelerator.prepare(model.unet, optimizer)
        text_encoder = model.text_encoder.to(accelerator.device)
    return unet, text_encoder, optimizer, lr_scheduler


def _prepare_sdxl(
    config: TrainConfig,
    accelerator: Any,
    model: Any,
    data: TrainingData,
    te_allowed: bool,
    weight_dtype: Any,
    notices: list[str],
) -> tuple[Any, ...]:
    """SDXL: which of the two encoders train, their cached outputs when both are frozen, the optimizer and
    schedule, accelerate's prepare. Returns (unet, text_encoder, text_encoder_2, optimizer, lr_scheduler,
    text_cache, te_training)."""
    from trainer import sdxl

    flags = sdxl.setup_text_encoders(model, config, te_allowed, weight_dtype)
    cached = config.cache_text_encoder_outputs and not any(flags)
    text_cache = sdxl.build_text_cache(model, data, config, accelerator.device) if cached else None
    optimizer = make_optimizer(
        config,
        model.unet,
        model.text_encoder if flags[0] else None,
        notices,
        model.text_encoder_2 if flags[1] else None,
        sdxl=True,
    )
    lr_scheduler = make_lr_scheduler(config, optimizer, data.schedule.total_steps)
    unet, text1, text2, optimizer = sdxl.prepare(accelerator, model, flags, optimizer, cached)
    return unet, text1, text2, optimizer, lr_scheduler, text_cache, any(flags)


def restore(run: Run, progress: checkpoint.Progress) -> None:
    """Continue from a saved state: weights, optimizer, scheduler, RNG, and our position in the schedule."""
    # A LoRA's state holds only the adapters; the frozen base weights are the base model's, loaded at set-up.
    checkpoint.load_state(run.accelerator, progress, run.lr_scheduler, strict=not run.config.network_module)
    run.step, run.epoch, run.groups_done = progress.step, progress.epoch, progress.groups_done
    run.result.te_steps = run.result.te_optimizer_steps = progress.te_trained_steps
    run.last_checkpoint = Path(progress.last_checkpoint) if progress.last_checkpoint else None
    run.last_saved_step = progress.step
    if (
        run.te_training
        and run.data.schedule.te_stop_step is not None
        and run.step >= run.data.schedule.te_stop_step
    ):
        freeze_text_encoder(run, emit=False)


# ---- one step ---------------------------------------------------------------------------------------------------


def batch_latents(run: Run, batch: Batch, index: int) -> Any:
    """Scaled VAE latents of a batch as this step sees it (flip_aug, random_crop), from the cache or encoded now."""
    import torch

    device = run.accelerator.device
    augments = batch_augments(batch, run.config, run.epoch, index)
    if run.cache is not None:
        latents = torch.stack(
            [run.cache.require(s, a.flip) for s, a in zip(batch.samples, augments, strict=True)]
        )
        latents = latents.to(device)
    else:
        pixels = load_batch_pixels(batch, augments, loader_workers(run.config)).to(device)
        with torch.no_grad():
            latents = run.model.vae.encode(pixels).latent_dist.sample()
    return latents * run.model.vae.config.scaling_factor


def batch_loss(run: Run, batch: Batch, index: int) -> Any:
    """The DreamBooth loss of one batch: captions processed for this step, random noise and timesteps."""
    from trainer.text import encode, tokenize

    config = run.config
    latents = batch_latents(run, batch, index)
    captions = batch_captions(batch, config, run.epoch, index)
    if run.model.family == "sdxl":
        from trainer.sdxl import batch_conditioning

        conditioning = batch_conditioning(run, batch, captions)
    else:
        import torch

        ids = tokenize(run.model.tokenizer, captions, config.max_token_length)
        with torch.set_grad_enabled(run.te_training):
            conditioning = {"encoder_hidden_states": encode(run.text_encoder, ids, config.clip_skip)}
    noise = sample_noise(latents, config)
    steps = sample_timesteps(config, latents.shape[0], latents.device)
    return denoising_loss(run, batch, latents, conditioning, noise, steps)


def unet_conditioning(conditioning: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """The UNet's conditioning kwargs (hidden states; SDXL's added pooled and size embedding) in ``dtype``."""
    out = {"encoder_hidden_states": conditioning["encoder_hidden_states"].to(dtype)}
    if "added_cond_kwargs" in conditioning:
        out["added_cond_kwargs"] = {k: v.to(dtype) for k, v in conditioning["added_cond_kwargs"].items()}
    return out


def denoising_loss(
    run: Run, batch: Batch, latents: Any, conditioning: dict[str, Any], noise: Any, steps: Any
) -> Any:
    """The loss of predicting the noise (epsilon or v) at ``steps``: ``loss_type`` per image, Min-SNR weighting,
    prior loss weight for regularization images, mean over the batch (Kohya's order of operations)."""
    import torch

    config, scheduler = run.config, run.noise_scheduler
    noisy = scheduler.add_noise(latents, noise, steps)
    target = scheduler.get_velocity(latents, noise, steps) if _is_v(run) else noise
    dtype = next(run.unet.parameters()).dtype  # full_fp16 / full_bf16: the inputs in the weights' precision
    prediction = run.unet(noisy.to(dtype), steps, **unet_conditioning(conditioning, dtype)).sample
    loss = diffusion_loss(prediction, target, steps, scheduler, config)
    if config.min_snr_gamma:
        loss = loss * min_snr_weights(run.model.noise_scheduler, steps, config.min_snr_gamma, _is_v(run))
    weights = torch.tensor(
        [config.prior_loss_weight if s.item.is_reg else 1.0 for s in batch.samples], device=loss.device
    )
    return (loss * weights).mean()


def _is_v(run: Run) -> bool:
    return run.config.v_parameterization or run.model.noise_scheduler.config.prediction_type == "v_prediction"


def optimizer_step(run: Run, group: list[Batch], first_index: int) -> float:
    """One optimizer step over a group of batches (gradient accumulation); returns the mean loss. Raises
    TrainingError on a NaN or infinite loss before anything is stepped."""
    accelerator = run.accelerator
    total = 0.0
    for offset, batch in enumerate(group):
        last = offset == len(group) - 1
        with contextlib.ExitStack() as stack:
            if not last:  # no gradient all-reduce until the group's last batch
                stack.enter_context(accelerator.no_sync(run.unet))
                if run.te_training:
                    for encoder in _text_encoders(run):
                        stack.enter_context(accelerator.no_sync(encoder))
            with accelerator.autocast():
                loss = batch_loss(run, batch, first_index + offset)
            if run.nan_at_step == run.step + 1:
                loss = loss * float("nan")
            value = float(loss.detach().item())
            if not _all_finite(run, value):
                raise _non_finite(run, value)
            accelerator.backward(loss / len(group))
        total += value
    params = [p for p in _trainable(run) if p.grad is not None]
    if run.config.max_grad_norm and params:
        accelerator.clip_grad_norm_(params, run.config.max_grad_norm)
    if not run.config.fused_backward_pass:  # fused: every parameter was updated during backward
        run.optimizer.step()
    if (
        not accelerator.optimizer_step_was_skipped
    ):  # an fp16 overflow skips the update: the schedule waits too
        run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return total / len(group)


def _all_finite(run: Run, value: float) -> bool:
    """Whether the loss is finite on every process (all of them must stop together, or the others would wait
    forever in the next gradient all-reduce)."""
    finite = math.isfinite(value)
    if run.accelerator.num_processes == 1:
        return finite
    import torch

    flag = torch.tensor([0.0 if finite else 1.0], device=run.accelerator.device)
    return float(run.accelerator.reduce(flag, reduction="sum").item()) == 0.0


def _text_encoders(run: Run) -> list[Any]:
    return [m for m in (run.text_encoder, run.text_encoder_2) if m is not None]


def _trainable(run: Run) -> list[Any]:
    params = [p for p in run.unet.parameters() if p.requires_grad]
    if run.te_training:
        params += [p for encoder in _text_encoders(run) for p in encoder.parameters() if p.requires_grad]
    return params


def _non_finite(run: Run, value: float) -> TrainingError:
    kept = (
        f"the last good checkpoint is {run.last_checkpoint}"
        if run.last_checkpoint
        else "no checkpoint was saved yet"
    )
    message = (
        f"loss became {value if not math.isfinite(value) else 'nan or inf on another process'} at step {run.step + 1} "
        f"(epoch {run.epoch}); training stopped and {kept}. "
        f"Try a lower learning_rate, mixed_precision bf16 or no, or check the images"
    )
    run.events.emit(
        "error",
        step=run.step + 1,
        epoch=run.epoch,
        message=message,
        last_checkpoint=str(run.last_checkpoint) if run.last_checkpoint else None,
    )
    return TrainingError(message)


def freeze_text_encoder(run: Run, emit: bool = True) -> None:
    """Stop training the text encoder cleanly: no gradients, eval mode, no optimizer updates, its optimizer state
    freed. (Kohya crashes at this point in some set-ups; here the parameters simply leave the optimizer's work.)"""
    inner = getattr(run.optimizer, "optimizer", run.optimizer)
    # A restored run's optimizer no longer holds the text encoder's state; keep the count restore() put there.
    run.result.te_optimizer_steps = optimizer_step_count(run, group=1) or run.result.te_optimizer_steps
    for encoder in _text_encoders(run):
        encoder.requires_grad_(False)
        encoder.eval()
        for param in run.accelerator.unwrap_model(encoder).parameters():
            param.grad = None  # AdamW skips parameters without a gradient, weight decay included
            inner.state.pop(param, None)
    run.te_training = False
    if emit:
        run.events.emit("te_stop", step=run.step, epoch=run.epoch)


def optimizer_step_count(run: Run, group: int) -> int:
    """How many times the optimizer updated the parameters of a param group (0: UNet, 1: text encoder)."""
    inner = getattr(run.optimizer, "optimizer", run.optimizer)
    if group >= len(inner.param_groups):
        return 0
    for param in inner.param_groups[group]["params"]:
        state = inner.state.get(param)
        if state and "step" in state:
            return int(state["step"])
    return 0


# ---- save and sample --------------------------------------------------------------------------------------------


def trained_model(run: Run) -> Any:
    """The SDModel with the trained (unwrapped) modules."""
    unwrap = run.accelerator.unwrap_model
    second = unwrap(run.text_encoder_2) if run.text_encoder_2 is not None else None
    return dataclasses.replace(
        run.model, unet=unwrap(run.unet), text_encoder=unwrap(run.text_encoder), text_encoder_2=second
    )


def save_point(run: Run, final: bool, by_step: bool) -> None:
    """Save the model (and the resume state), render samples; once per step at most."""
    if run.last_saved_step == run.step and not final:
        return
    config, accelerator = run.config, run.accelerator
    path = checkpoint.checkpoint_path(config, run.epoch, run.step, final, by_step)
    if accelerator.is_main_process:
        metadata = checkpoint.training_metadata(
            config, run.step, run.epoch, getattr(run.model, "family", "sd1"), _is_v(run)
        )
        if config.network_module:
            lora_training.save_checkpoint(trained_model(run), config, path, metadata, run.data)
        else:
            checkpoint.save_model(trained_model(run), config, path, metadata)
        run.result.checkpoints.append(path)
    run.last_checkpoint = path  # every process knows it, so any one of them can name it in a message
    state_dir = None
    if config.save_state and not (final and run.last_saved_step == run.step):
        state_dir = checkpoint.save_state(accelerator, run.output_dir, _progress(run), run.lr_scheduler)
    run.last_saved_step = run.step
    run.events.emit(
        "checkpoint",
        step=run.step,
        epoch=run.epoch,
        path=str(path),
        state=str(state_dir) if state_dir else None,
    )
    record_validation(run)
    if config.sample_prompts and (config.sample_every_n_epochs == 0 or final):
        render(run, path.name.removesuffix(".safetensors"))
    write_training_report(run)


def _progress(run: Run) -> checkpoint.Progress:
    return checkpoint.Progress(
        step=run.step,
        epoch=run.epoch,
        groups_done=run.groups_done,
        te_trained_steps=run.result.te_steps,
        last_checkpoint=str(run.last_checkpoint) if run.last_checkpoint else None,
        config=run.config.to_dict(),
    )


def render(run: Run, stem: str) -> None:
    """Render the sample prompts with the current weights (main process only)."""
    from curator.settings.prompts import load_sample_prompts
    from trainer.sampling import render_samples

    if not run.accelerator.is_main_process:
        return
    # Read again at each save point (a prompt file may be edited during a long run, as Kohya allows); its notices
    # were shown once at set-up.
    prompts = load_sample_prompts(run.config.sample_prompts)
    model = trained_model(run)
    vae_device = next(model.vae.parameters()).device
    model.vae.to(run.accelerator.device)
    # SDXL's encoders wait on the CPU when their outputs are cached; samples need them for new prompts
    parked = [
        m for m in (model.text_encoder, model.text_encoder_2) if m is not None and run.text_cache is not None
    ]
    for module in parked:
        module.to(run.accelerator.device)
    try:
        paths = render_samples(
            model,
            prompts,
            run.output_dir / "samples",
            stem,
            steps=run.config.sample_steps,
            size=(run.config.resolution, run.config.resolution),
            seed=run.config.seed,
            sampler=run.config.sample_sampler,
            clip_skip=run.config.clip_skip,
            max_token_length=run.config.max_token_length,
            autocast=run.accelerator.autocast(),
        )
    finally:
        model.vae.to(vae_device)
        for module in parked:
            module.to("cpu")
    for sample, path in zip(prompts, paths, strict=True):
        run.events.emit("sample", step=run.step, epoch=run.epoch, path=str(path), prompt=sample.prompt)
        run.result.samples.append(path)


# ---- the loop ---------------------------------------------------------------------------------------------------


def run_epoch(run: Run, ticker: Any) -> None:
    """Train one epoch (or what is left of it after a resume)."""
    config, schedule = run.config, run.data.schedule
    accelerator = run.accelerator
    batches = run.data.epoch_batches(run.epoch, accelerator.process_index, accelerator.num_processes)
    per_step = config.gradient_accumulation_steps
    groups = [batches[i : i + per_step] for i in range(0, len(batches), per_step)]
    losses = []
    while run.groups_done < len(groups) and run.step < schedule.total_steps:
        first = run.groups_done * per_step
        loss = optimizer_step(run, groups[run.groups_done], first)
        if run.te_training:
            run.result.te_steps += 1
        run.step += 1
        run.groups_done += 1
        losses.append(loss)
        run.result.losses.append(loss)
        ticker(loss)
        if run.te_training and schedule.te_stop_step is not None and run.step >= schedule.te_stop_step:
            freeze_text_encoder(run)
        if (
            config.save_every_n_steps
            and run.step % config.save_every_n_steps == 0
            and run.step < schedule.total_steps
        ):
            save_point(run, final=False, by_step=True)
        elif config.validate_every_n_steps and run.step % config.validate_every_n_steps == 0:
            record_validation(run)
    if losses:
        run.events.emit("epoch", epoch=run.epoch, step=run.step, loss=sum(losses) / len(losses))
        accelerator.log({"loss/epoch": sum(losses) / len(losses)}, step=run.step)


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> TrainResult:
    """Train ``config`` to the end (or continue a saved run with ``resume``); returns what happened.

    Raises ConfigError / DataError for bad settings or data and TrainingError when the loss turns NaN or inf.
    """
    config.validate()
    run = setup_run(config, resume, show_progress)
    schedule = run.data.schedule
    run.events.emit(
        "start",
        total_steps=schedule.total_steps,
        steps_per_epoch=schedule.steps_per_epoch,
        epochs=schedule.epochs,
        te_stop_step=schedule.te_stop_step,
        resumed_from_step=run.step if resume else None,
        device=str(run.accelerator.device),
        processes=run.accelerator.num_processes,
        mixed_precision=run.accelerator.mixed_precision,
    )
    started = time.monotonic()
    if not resume:
        record_validation(run)  # the curve's starting point: the base model on the held-out images
    try:
        with _progress_bar(run, show_progress) as ticker:
            while run.step < schedule.total_steps and run.epoch <= schedule.epochs:
                run_epoch(run, ticker)
                if run.step >= schedule.total_steps:
                    break
                _end_of_epoch(run)
        save_point(run, final=True, by_step=False)
    except TrainingError:
        run.events.close()  # the error event is already written
        raise
    except Exception as exc:
        run.events.emit(
            "error",
            step=run.step,
            epoch=run.epoch,
            message=f"{type(exc).__name__}: {exc}",
            last_checkpoint=str(run.last_checkpoint) if run.last_checkpoint else None,
        )
        run.events.close()
        raise
    run.result.steps, run.result.final_path = run.step, run.last_checkpoint
    run.result.main_process = run.accelerator.is_main_process
    run.result.optimizer_steps = optimizer_step_count(run, group=0)
    if run.te_training:
        run.result.te_optimizer_steps = optimizer_step_count(run, group=1)
    run.events.emit(
        "end",
        step=run.step,
        epoch=run.epoch,
        path=str(run.last_checkpoint),
        seconds=round(time.monotonic() - started, 2),
    )
    write_training_report(run)
    run.events.close()
    run.accelerator.end_training()
    return run.result


def _end_of_epoch(run: Run) -> None:
    config = run.config
    if config.save_every_n_epochs and run.epoch % config.save_every_n_epochs == 0:
        save_point(run, final=False, by_step=False)
    elif (
        config.sample_prompts
        and config.sample_every_n_epochs
        and run.epoch % config.sample_every_n_epochs == 0
    ):
        render(run, f"{config.output_name}-{run.epoch:06d}")
    run.epoch += 1
    run.groups_done = 0


@contextlib.contextmanager
def _progress_bar(run: Run, enabled: bool) -> Any:
    """A rich progress bar (main process) and the per-step event; yields ``ticker(loss)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = run.data.schedule.total_steps
    show = enabled and run.accelerator.is_main_process
    bar = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        disable=not show,
    )
    task = bar.add_task("train", total=total, completed=run.step, epoch=run.epoch, loss=0.0)
    clock = {"start": time.monotonic(), "done": 0}

    def ticker(loss: float) -> None:
        clock["done"] += 1
        elapsed = max(1e-9, time.monotonic() - clock["start"])
        rate = clock["done"] / elapsed
        lrs = [float(lr) for lr in run.lr_scheduler.get_last_lr()]  # Adafactor's own schedule: tensors
        run.events.emit(
            "step",
            step=run.step,
            epoch=run.epoch,
            loss=round(loss, 6),
            lr=lrs[0],
            lr_te=lrs[1] if run.te_training and len(lrs) > 1 else None,
            it_s=round(rate, 4),
            eta_s=round((total - run.step) / rate, 1),
        )
        bar.update(task, completed=run.step, epoch=run.epoch, loss=loss)
        logs = {"loss": loss, "lr/unet": lrs[0]}
        if run.te_training and len(lrs) > 1:
            logs["lr/text_encoder1"] = lrs[1]
        run.accelerator.log(logs, step=run.step)

    with bar:
        yield ticker
