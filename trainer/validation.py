"""The validation loss: the held-out images (``validation_split``) denoised at fixed timesteps with fixed noise, so
the number moves only because the weights do. Comparable between save points and between runs of one dataset and
seed: the curve falls while the model learns the concept and rises once it starts to memorize the training images.

The loss is the mean squared error of the prediction target (epsilon or v), unweighted (no Min-SNR, no Huber),
over every held-out image at each of :data:`TIMESTEPS` spread over [min_timestep, max_timestep); captions are the
image's caption (with prefix / suffix), never shuffled or dropped; no flip, centre crop.

Example::

    loss = validation_loss(run)      # None when nothing is held out
"""

from __future__ import annotations

from typing import Any

#: fixed timesteps per held-out image
TIMESTEPS = 5


def fixed_timesteps(min_timestep: int, max_timestep: int, count: int = TIMESTEPS) -> list[int]:
    """``count`` timesteps at the centres of equal slices of [min_timestep, max_timestep)."""
    span = max(1, max_timestep - min_timestep)
    return [min(max_timestep - 1, int(min_timestep + (k + 0.5) * span / count)) for k in range(count)]


def validation_loss(run: Any) -> float | None:
    """The mean validation loss with the current weights (main process; None when nothing is held out)."""
    import torch
    import torch.nn.functional as F

    from curator.captions.parse import process_caption
    from trainer.data import Batch, caption_options, item_caption
    from trainer.loop import batch_latents, trained_model, unet_conditioning

    samples = run.data.validation
    if not samples:
        return None
    config, device = run.config, run.accelerator.device
    model = trained_model(run)
    scheduler = run.noise_scheduler
    steps = torch.tensor(fixed_timesteps(config.min_timestep, config.max_timestep), device=device)
    options = caption_options(config.replace(shuffle_caption=False, caption_tag_dropout_rate=0.0))
    total = 0.0
    was_training = model.unet.training
    model.unet.eval()
    try:
        for position, sample in enumerate(samples):
            batch = Batch(sample.bucket, (sample,))
            with torch.no_grad(), run.accelerator.autocast():
                latents = _plain_latents(run, batch, batch_latents).repeat(len(steps), 1, 1, 1)
                generator = torch.Generator().manual_seed(config.seed * 1_000_003 + position)
                noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
                caption = process_caption(item_caption(sample.item), options)
                conditioning = _conditioning(run, model, batch, [caption] * len(steps))
                noisy = scheduler.add_noise(latents, noise, steps)
                v = config.v_parameterization or scheduler.config.prediction_type == "v_prediction"
                target = scheduler.get_velocity(latents, noise, steps) if v else noise
                dtype = next(model.unet.parameters()).dtype
                prediction = model.unet(
                    noisy.to(dtype), steps, **unet_conditioning(conditioning, dtype)
                ).sample
            total += float(F.mse_loss(prediction.float(), target.float()).item())
    finally:
        model.unet.train(was_training)
    return total / len(samples)


def _conditioning(run: Any, model: Any, batch: Any, captions: list[str]) -> dict[str, Any]:
    """The UNet's conditioning of a validation batch, without gradients (SDXL: both encoders and the size ids)."""
    from trainer.text import encode, tokenize

    if model.family == "sdxl":
        from trainer.sdxl import added_conditions, encode_captions

        if run.text_cache is not None:
            states, pooled = run.text_cache.batch(captions, run.accelerator.device)
        else:
            pair = (model.tokenizer, model.tokenizer_2), (model.text_encoder, model.text_encoder_2)
            states, pooled = encode_captions(*pair, captions, run.config.max_token_length)
        samples = batch.samples * (len(captions) // len(batch.samples))
        return {"encoder_hidden_states": states, "added_cond_kwargs": added_conditions(pooled, samples)}
    ids = tokenize(model.tokenizer, captions, run.config.max_token_length)
    return {"encoder_hidden_states": encode(model.text_encoder, ids, run.config.clip_skip)}


def _plain_latents(run: Any, batch: Any, batch_latents: Any) -> Any:
    """The batch's latents as training would see them with no augmentation (flip_aug / random_crop off)."""
    plain = run.config.replace(flip_aug=False, random_crop=False)
    saved, run.config = run.config, plain
    try:
        return batch_latents(run, batch, 0)
    finally:
        run.config = saved


def record_validation(run: Any) -> float | None:
    """Compute the validation loss on the main process and report it (``validation`` event, tensorboard)."""
    if not run.data.validation or not run.accelerator.is_main_process:
        return None
    if run.result.validation_losses and run.result.validation_losses[-1][0] == run.step:
        return run.result.validation_losses[-1][1]  # a step saved twice (by step, then as the final model)
    loss = validation_loss(run)
    if loss is None:
        return None
    run.events.emit(
        "validation", step=run.step, epoch=run.epoch, loss=round(loss, 6), images=len(run.data.validation)
    )
    run.accelerator.log({"loss/validation": loss}, step=run.step)
    run.result.validation_losses.append((run.step, loss))
    return loss
