"""Estimates around a training plan: GPU memory, time, checkpoint disk space and dataset size advice.

These are documented approximations fitted to published figures (sources in the comments), not measurements of
the user's machine; every number the plan prints from here is labelled an estimate, and a measured it/s replaces
the speed table.

Example::

    >>> round(estimate_vram(VramInputs(resolution=512, batch_size=1, gradient_checkpointing=True,
    ...                                use_8bit_adam=True, train_text_encoder=False)).total_gb, 1)
    9.9

When the base model is known (``VramInputs.unet_params`` / ``te_params`` / ``unet_width``, read from its header by
:mod:`curator.plan.modelfile`), the terms that hold weights, gradients and optimizer states scale with the real
parameter counts of what trains (the UNet, and the text encoder until it stops): the UNet's share of the fixed part
is 10 bytes a parameter (fp32 weights and gradients, 8-bit Adam's 2 bytes) out of the fitted 9.44 GB, the rest
(CUDA context, frozen VAE, buffers) stays; AdamW's extra states scale with the UNet's parameters; the text encoder's
term uses its real count. Activations keep their fitted values for SD-sized UNets (base width 320) and scale in
proportion to the UNet's base width for narrower ones (feature maps are width x pixels; a rough rule, labelled an
estimate like the rest). Without a base model the SD 1.5 / 2.x figures above are used unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- GPU memory ------------------------------------------------------------------------------------------------
# Fitted to the published DreamBooth memory table of ShivamShrirao/diffusers (examples/dreambooth README, SD 1.x at
# 512 px, UNet only, text-encoder outputs cached, xformers attention, measured on a Tesla T4):
#   fp16, batch 1, gradient checkpointing, 8-bit Adam ........  9.92 GB
#   fp16, batch 2, gradient checkpointing, 8-bit Adam ........ 10.40 GB
#   fp16, batch 1, no checkpointing,       8-bit Adam ........ 11.17 GB
#   fp16, batch 2, no checkpointing,       8-bit Adam ........ 13.67 GB
#   fp16, batch 1, gradient checkpointing, AdamW ............. 15.79 GB
#   fp32, batch 1, gradient checkpointing, 8-bit Adam ........ 10.08 GB
# so: a fixed part (weights, gradients, CUDA context) plus activations per image that scale with the pixel count,
# and AdamW's two fp32 moments cost about 5.9 GB more than 8-bit ones for the 860 M-parameter UNet.
# diffusers' own DreamBooth README agrees on the envelope: UNet-only training fits 16 GB with checkpointing and
# 8-bit Adam; training the text encoder as well "needs at least 24GB" without those savings.
_FIXED_GB = {True: 9.44, False: 8.67}  # by gradient checkpointing (9.92 - 0.48; 11.17 - 2.50)
_ACTIVATIONS_GB_PER_IMAGE_512 = {True: 0.48, False: 2.50}  # 10.40 - 9.92; 13.67 - 11.17
_ADAMW_EXTRA_GB = 5.87  # 15.79 - 9.92
_FP32_ACTIVATION_FACTOR = 1.33  # 10.08 vs 9.92 at 0.48 GB of activations
# Text encoder training, from parameter counts (not in the table): fp32 weights + gradients (8 bytes a parameter)
# plus optimizer moments (8 bytes AdamW, 2 bytes 8-bit), plus ~0.2 GB of activations. CLIP ViT-L/14 text (SD 1.x):
# 123 M parameters; OpenCLIP ViT-H/14 text (SD 2.x): 340 M.
_TE_PARAMS = {"sd15": 123e6, "sd2": 340e6}
# The UNet behind the fit: SD 1.x's 859.5 M parameters at base width 320. In the fixed part its fp32 weights and
# gradients and 8-bit Adam states take 10 bytes a parameter (8.6 GB of the 9.44 / 8.67 GB); the rest is not weights.
_FIT_UNET_PARAMS = 859.52e6
_FIT_UNET_WIDTH = 320
_UNET_BYTES_PER_PARAM = 10

#: memory below which the seed tutorial advises against DreamBooth, and the resolution limit at that size
MIN_ADVISED_VRAM_GB = 12.0
MAX_RESOLUTION_AT_12GB = 768


@dataclass(frozen=True)
class VramInputs:
    """What the memory estimate depends on."""

    resolution: int = 512
    batch_size: int = 1
    mixed_precision: str = "fp16"  # no, fp16, bf16
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    train_text_encoder: bool = True
    model: str = "sd15"  # sd15, sd2 or sdxl
    unet_params: int | None = None  # the base model's UNet parameters (None: SD's, as fitted)
    te_params: int | None = (
        None  # the base model's text-encoder parameters, SDXL's two together (None: by model)
    )
    unet_width: int | None = None  # the UNet's base width (None: SD's 320)
    # SDXL recipes (sdxl_train.py's settings); the SD 1.x / 2.x fit above predates them and ignores them
    optimizer_type: str = ""  # AdamW, AdamW8bit or Adafactor ("": AdamW, or 8-bit with use_8bit_adam)
    fused_backward_pass: bool = False  # Adafactor steps each parameter during backward: no gradient buffers
    full_bf16: bool = False  # weights and gradients in bf16 (Kohya's full_bf16)
    cache_text_encoder_outputs: bool = False  # frozen text encoders leave the GPU after encoding the captions
    network_dim: int = 0  # a LoRA of this rank instead of DreamBooth (0: DreamBooth, the whole model trains)
    conv_dim: int = 0  # the LoRA's rank of 3x3 convs (0: not adapted)


@dataclass
class VramEstimate:
    """The estimate and its parts (GB), with warnings against the user's GPU memory."""

    total_gb: float
    parts: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"total_gb": round(self.total_gb, 2), "parts": self.parts, "warnings": self.warnings}


def estimate_vram(inputs: VramInputs, available_gb: float | None = None) -> VramEstimate:
    """Peak GPU memory of a DreamBooth run (see the fit above); warns below 12 GB, and above 768 px at 12 GB.
    SDXL: see :func:`estimate_sdxl_vram`; a LoRA run (``network_dim``) of SD 1.x / 2.x: :func:`estimate_lora_vram`."""
    if inputs.model == "sdxl":
        return estimate_sdxl_vram(inputs, available_gb)
    if inputs.network_dim:
        return estimate_lora_vram(inputs, available_gb)
    gc = inputs.gradient_checkpointing
    pixels = (inputs.resolution / 512) ** 2
    activation = _ACTIVATIONS_GB_PER_IMAGE_512[gc] * pixels * inputs.batch_size
    if inputs.mixed_precision == "no":
        activation *= _FP32_ACTIVATION_FACTOR
    unet_scale = 1.0 if inputs.unet_params is None else inputs.unet_params / _FIT_UNET_PARAMS
    if inputs.unet_width is not None:
        activation *= min(1.0, inputs.unet_width / _FIT_UNET_WIDTH)
    fit_states = _FIT_UNET_PARAMS * _UNET_BYTES_PER_PARAM / 1e9
    fixed = _FIXED_GB[gc] - fit_states + fit_states * unet_scale
    parts = {"fixed": round(fixed, 2), "activations": round(activation, 2)}
    if not inputs.use_8bit_adam:
        parts["adamw_states"] = round(_ADAMW_EXTRA_GB * unet_scale, 2)
    if inputs.train_text_encoder:
        per_param = 8 + (2 if inputs.use_8bit_adam else 8)
        te = (
            inputs.te_params
            if inputs.te_params is not None
            else _TE_PARAMS.get(inputs.model, _TE_PARAMS["sd15"])
        )
        parts["text_encoder"] = round(te * per_param / 1e9 + 0.2 * min(1.0, te / _TE_PARAMS["sd15"]), 2)
    total = sum(parts.values())
    warnings = []
    if available_gb is not None:
        if available_gb < MIN_ADVISED_VRAM_GB:
            warnings.append(
                f"{available_gb:g} GB of GPU memory: DreamBooth is not advised below {MIN_ADVISED_VRAM_GB:g} GB"
            )
        elif available_gb < 16 and inputs.resolution > MAX_RESOLUTION_AT_12GB:
            warnings.append(
                f"with {available_gb:g} GB keep the resolution at or below {MAX_RESOLUTION_AT_12GB}"
            )
        if total > available_gb:
            warnings.append(
                f"the estimate ({total:.1f} GB) exceeds {available_gb:g} GB: turn on gradient checkpointing, "
                "8-bit Adam, a smaller batch, or stop training the text encoder"
            )
    return VramEstimate(total, parts, warnings)


# --- SDXL memory ------------------------------------------------------------------------------------------------
# Anchors (Kohya sd-scripts PR 1259, sdxl_train.py at 1024 px, batch 1, UNet only, latents and text-encoder outputs
# cached, gradient checkpointing, Adafactor with fused_backward_pass): about 10 GB with full_bf16, 16.4 GB with fp32
# weights. Terms from parameter counts: weights 2 (bf16) or 4 bytes a parameter; gradients the same unless the
# fused backward pass frees each one as it is applied; optimizer states AdamW 8 bytes, 8-bit AdamW 2, Adafactor
# (factored second moments) about 0. What the anchors leave after the UNet's weights is activations and CUDA's
# own memory: 10 - 5.13 = 4.9 GB in bf16, 16.4 - 10.27 = 6.1 GB in fp32, taken as 1.5 GB fixed plus 3.4 / 4.6 GB
# of activations per 1024 px image with checkpointing; without it, x5.2 (the SD fit's ratio 2.50 / 0.48).
SDXL_UNET_PARAMS = 2_567_463_684  # the SDXL base UNet
SDXL_TE_PARAMS = 123_060_480 + 694_659_840  # CLIP ViT-L + OpenCLIP bigG (with its projection)
_SDXL_CUDA_GB = 1.5
_SDXL_ACTIVATIONS_GB = {True: 3.4, False: 4.6}  # per 1024 px image with checkpointing, by full_bf16
_SDXL_NO_CHECKPOINTING = 5.2
_OPTIMIZER_BYTES = {"AdamW": 8, "AdamW8bit": 2, "Adafactor": 0}
#: sources of the SDXL figures, printed beside the estimate
SDXL_SOURCES = (
    "memory: Kohya sd-scripts PR 1259 (about 10 GB bf16 / 16.4 GB fp32, 1024 px batch 1, UNet only, Adafactor "
    "fused, cached text-encoder outputs); speed: OneTrainer issue 164 (RTX 4090 about 1.2 s/it, full fine-tune "
    "with both text encoders); other settings scaled from those: estimates"
)


def _optimizer(inputs: VramInputs) -> str:
    return inputs.optimizer_type or ("AdamW8bit" if inputs.use_8bit_adam else "AdamW")


def estimate_sdxl_vram(inputs: VramInputs, available_gb: float | None = None) -> VramEstimate:
    """Peak GPU memory of an SDXL fine-tune (sdxl_train.py's recipes; see the anchors above), with warnings."""
    bf16 = inputs.full_bf16
    weight_bytes = 2 if bf16 else 4
    unet = inputs.unet_params or SDXL_UNET_PARAMS
    optimizer = _optimizer(inputs)
    fused = inputs.fused_backward_pass and optimizer == "Adafactor"
    activation = _SDXL_ACTIVATIONS_GB[bf16] * (inputs.resolution / 1024) ** 2 * inputs.batch_size
    if not inputs.gradient_checkpointing:
        activation *= _SDXL_NO_CHECKPOINTING
    if inputs.unet_width is not None:  # narrower UNets (the tiny test model): feature maps scale with width
        activation *= min(1.0, inputs.unet_width / _FIT_UNET_WIDTH)
    parts = {
        "cuda_and_buffers": _SDXL_CUDA_GB,
        "unet_weights": round(unet * weight_bytes / 1e9, 2),
        "activations": round(activation, 2),
    }
    if not fused:
        parts["unet_gradients"] = round(unet * weight_bytes / 1e9, 2)
    if _OPTIMIZER_BYTES.get(optimizer, 8):
        parts["optimizer_states"] = round(unet * _OPTIMIZER_BYTES.get(optimizer, 8) / 1e9, 2)
    te = inputs.te_params or SDXL_TE_PARAMS
    if inputs.train_text_encoder:
        per_param = weight_bytes * (1 if fused else 2) + _OPTIMIZER_BYTES.get(optimizer, 8)
        parts["text_encoders"] = round(te * per_param / 1e9 + 0.5 * inputs.batch_size, 2)
    elif not inputs.cache_text_encoder_outputs:
        parts["text_encoders_frozen"] = round(
            te * 4 / 1e9, 2
        )  # float32 on the GPU (the trainer keeps them so)
    total = sum(parts.values())
    warnings = []
    if available_gb is not None and total > available_gb:
        warnings.append(
            f"the estimate ({total:.1f} GB) exceeds {available_gb:g} GB: for SDXL use Adafactor with "
            "fused_backward_pass, full_bf16, cache_text_encoder_outputs and gradient checkpointing "
            "(about 10 GB at 1024 px, batch 1), or train a LoRA"
        )
    return VramEstimate(total, parts, warnings)


# --- LoRA ------------------------------------------------------------------------------------------------------
# Adapter parameters per unit of rank: the sum of in + out features (3x3 convs: in x 9 + out) over Kohya's target
# layers (trainer.lora.targets), counted on diffusers' SD 1.5 and SD 2.1 configs: transformer-block linears and 1x1
# convs of the UNet, CLIP attention and MLP linears, with conv_dim the resnets' and samplers' 3x3 convs (at conv_dim)
# and their other layers (at network_dim). SD 1.5 at rank 128, UNet and text encoder: 75.5 M parameters, 151 MB in
# fp16, near the ~144 MB Kohya users report for such a file.
_LORA_PER_RANK = {
    "sd15": {"unet": 423_936, "te": 165_888, "conv": 544_000, "conv_block": 82_880},
    "sd2": {"unet": 432_128, "te": 423_936, "conv": 544_000, "conv_block": 82_880},
}
# A LoRA run holds the frozen model in fp32 (4 bytes a parameter, no gradients, no optimizer states), the DreamBooth
# fit's non-weight part (CUDA context, VAE, buffers: 9.44 - 8.60 GB) and the same activations (the backward pass
# still runs through the whole UNet); the adapters take 16 bytes a parameter (fp32 weight, gradient, two moments).
_NON_WEIGHT_GB = 0.84
_LORA_BYTES_PER_PARAM = 16


def lora_parameters(
    model: str,
    network_dim: int,
    conv_dim: int = 0,
    unet: bool = True,
    text_encoder: bool = True,
    unet_width: int | None = None,
) -> int:
    """Parameters of a Kohya ``networks.lora`` LoRA (see the counts above); a narrower UNet (``unet_width``) scales
    the UNet's share."""
    counts = _LORA_PER_RANK.get(model, _LORA_PER_RANK["sd15"])
    scale = 1.0 if unet_width is None else unet_width / _FIT_UNET_WIDTH
    total = 0.0
    if unet:
        total += network_dim * counts["unet"] * scale
        if conv_dim:
            total += (conv_dim * counts["conv"] + network_dim * counts["conv_block"]) * scale
    if text_encoder:
        total += network_dim * counts["te"]
    return round(total)


def lora_file_gb(params: int, save_precision: str = "float") -> float:
    """Size of a LoRA file in GB (4 bytes a value in float, 2 in fp16 / bf16; the header is a few kB)."""
    return params * (4 if save_precision == "float" else 2) / 1e9


def estimate_lora_vram(inputs: VramInputs, available_gb: float | None = None) -> VramEstimate:
    """Peak GPU memory of a LoRA run: frozen fp32 weights, activations, and the adapters' training state."""
    gc = inputs.gradient_checkpointing
    activation = _ACTIVATIONS_GB_PER_IMAGE_512[gc] * (inputs.resolution / 512) ** 2 * inputs.batch_size
    if inputs.mixed_precision == "no":
        activation *= _FP32_ACTIVATION_FACTOR
    if inputs.unet_width is not None:
        activation *= min(1.0, inputs.unet_width / _FIT_UNET_WIDTH)
    unet = inputs.unet_params if inputs.unet_params is not None else _FIT_UNET_PARAMS
    te = (
        inputs.te_params if inputs.te_params is not None else _TE_PARAMS.get(inputs.model, _TE_PARAMS["sd15"])
    )
    adapters = lora_parameters(
        inputs.model,
        inputs.network_dim,
        inputs.conv_dim,
        text_encoder=inputs.train_text_encoder,
        unet_width=inputs.unet_width,
    )
    parts = {
        "fixed": _NON_WEIGHT_GB,
        "frozen_weights": round((unet + te) * 4 / 1e9, 2),
        "activations": round(activation, 2),
        "lora": round(adapters * _LORA_BYTES_PER_PARAM / 1e9, 3),
    }
    if inputs.train_text_encoder:
        parts["text_encoder_activations"] = round(0.2 * min(1.0, te / _TE_PARAMS["sd15"]), 2)
    total = sum(parts.values())
    warnings = []
    if available_gb is not None and total > available_gb:
        warnings.append(
            f"the estimate ({total:.1f} GB) exceeds {available_gb:g} GB: turn on gradient checkpointing, "
            "a smaller batch or a lower resolution"
        )
    return VramEstimate(total, parts, warnings)


# --- speed -----------------------------------------------------------------------------------------------------
# Optimizer steps a second at 512 px, batch 1, fp16, gradient checkpointing, UNet only.
# Published: T4 0.93 it/s (ShivamShrirao/diffusers DreamBooth table, above); RTX 3080 10 GB about 1.5 it/s
# (d8ahazard/sd_dreambooth_extension discussion #84). The other classes are ESTIMATES scaled from those two by the
# cards' relative fp16 tensor throughput; pass a measured it/s (plan --its) to replace them.
ITS_TABLE: dict[str, tuple[float, str]] = {
    "t4": (0.93, "published (ShivamShrirao/diffusers table)"),
    "rtx3060": (0.9, "estimate"),
    "rtx3080": (1.5, "published (sd_dreambooth_extension #84)"),
    "a10g": (1.4, "estimate"),
    "rtx3090": (1.8, "estimate"),
    "rtx4090": (3.2, "estimate"),
    "a100": (3.0, "estimate"),
    "h100": (5.0, "estimate"),
}
DEFAULT_GPU_CLASS = "rtx3090"
# From the same T4 table: batch 2 runs at 0.66 it/s against 0.93 (a step costs 1.41x), checkpointing off runs at
# 1.14 (x1.23 faster), fp32 at 0.42 (x0.45).
_BATCH_STEP_COST = 0.41
_NO_CHECKPOINTING_SPEEDUP = 1.23
_FP32_SPEED = 0.45
_TE_STEP_COST = 1.1  # backward through the text encoder as well: an estimate
_SDXL_4090_SECONDS = (
    1.2  # OneTrainer issue 164: SDXL full fine-tune with both text encoders, 1024 px, batch 1
)


@dataclass
class TimeEstimate:
    """Seconds of training and the it/s behind them."""

    its: float
    seconds: float
    source: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"its": round(self.its, 3), "seconds": round(self.seconds), "source": self.source}


def estimate_time(
    total_steps: int,
    inputs: VramInputs,
    gradient_accumulation_steps: int = 1,
    gpu_class: str | None = None,
    measured_its: float | None = None,
    te_steps: int | None = None,
) -> TimeEstimate:
    """Training time: optimizer steps / it/s, the table's it/s adjusted for resolution, batch, checkpointing,
    precision and text-encoder training (``te_steps`` of them). A measured it/s (per optimizer step at these
    settings) is used as it is."""
    if measured_its:
        return TimeEstimate(measured_its, total_steps / measured_its, "measured (--its)")
    name = (gpu_class or DEFAULT_GPU_CLASS).lower()
    base, source = ITS_TABLE.get(name, ITS_TABLE[DEFAULT_GPU_CLASS])
    reference = 512
    if inputs.model == "sdxl":  # OneTrainer 164's 1.2 s/it (1024 px, both text encoders) on the RTX 4090
        base = base / ITS_TABLE["rtx4090"][0] * _TE_STEP_COST / _SDXL_4090_SECONDS
        source = f"SDXL: OneTrainer 164 on an RTX 4090, scaled by the SD table ({source})"
        reference = 1024
    step_cost = (inputs.resolution / reference) ** 2 * (1 + _BATCH_STEP_COST * (inputs.batch_size - 1))
    step_cost *= gradient_accumulation_steps
    its = base / step_cost
    if not inputs.gradient_checkpointing:
        its *= _NO_CHECKPOINTING_SPEEDUP
    if inputs.mixed_precision == "no":
        its *= _FP32_SPEED
    te = total_steps if te_steps is None else min(te_steps, total_steps)
    seconds = (total_steps - te) / its + te * _TE_STEP_COST / its
    return TimeEstimate(total_steps / seconds if seconds else its, seconds, f"{name}: {source}")


# --- disk ------------------------------------------------------------------------------------------------------
# Parameters of a whole checkpoint (UNet + text encoder + VAE): SD 1.x 859.5 M + 123.1 M + 83.7 M; SD 2.x
# 865.9 M + 340.4 M + 83.7 M. 4 bytes each in float, 2 in fp16 / bf16: SD 1.5 about 4.3 / 2.1 GB.
_CHECKPOINT_PARAMS = {"sd15": 1.0663e9, "sd2": 1.29e9, "sdxl": 3.4677e9}


def checkpoint_gb(
    save_precision: str = "float", model: str = "sd15", params: int | None = None, header_bytes: int = 0
) -> float:
    """Size of one saved checkpoint in GB: parameters x bytes per value (4 in float, 2 in fp16 / bf16) plus the
    file's header; ``params`` (the base model's real count, see :mod:`curator.plan.modelfile`) wins over ``model``."""
    count = params if params is not None else _CHECKPOINT_PARAMS.get(model, _CHECKPOINT_PARAMS["sd15"])
    return (count * (4 if save_precision == "float" else 2) + header_bytes) / 1e9


def disk_size(n_bytes: float) -> str:
    """A size in words: "4.3 GB", "22 MB" (a tiny model's checkpoints are megabytes, not "0.0 GB")."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    if n_bytes >= 1e6:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e3:.0f} kB"


def checkpoints_written(epochs: int, save_every_n_epochs: int | None) -> int:
    """Files a run writes: one at every ``save_every_n_epochs`` epochs before the last (Kohya saves when
    ``epoch % n == 0 and epoch < epochs``), plus the final model."""
    if not save_every_n_epochs or save_every_n_epochs <= 0:
        return 1
    return (
        max(0, epochs - 1) // save_every_n_epochs + 1
    )  # the multiples of n below epochs, counted not listed


# --- dataset size ----------------------------------------------------------------------------------------------
# The seed tutorial: a style trains well from about 100 images and gains little beyond 300 (unless many characters
# or outfits are trained at once). Subjects need far fewer: DreamBooth's paper used 3-5 images; community practice
# for a person or character is about 15-50 varied images.
SIZE_RANGES = {"style": (100, 300), "subject": (15, 50), "character": (15, 50)}


@dataclass
class SizeAdvice:
    """Advice about one concept's image count."""

    concept: str
    images: int
    kind: str
    low: int
    high: int
    verdict: str  # "too_few", "ok", "many"
    advice: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "concept": self.concept,
            "images": self.images,
            "kind": self.kind,
            "range": [self.low, self.high],
            "verdict": self.verdict,
            "advice": self.advice,
        }


def size_advice(concept: str, images: int, kind: str = "style") -> SizeAdvice:
    """Advice, with its reason, for a concept of ``images`` training images of ``kind`` (style or subject)."""
    low, high = SIZE_RANGES.get(kind, SIZE_RANGES["style"])
    if images < low:
        if kind == "style":
            what = "varied subjects, compositions, lighting and palettes in the same style"
        else:
            what = "different angles, distances, expressions, lighting and backgrounds of the same subject"
        return SizeAdvice(
            concept,
            images,
            kind,
            low,
            high,
            "too_few",
            f"{images} images; a {kind} usually needs about {low}-{high}: add {low - images} or more showing {what}, "
            "so the model learns what they share rather than memorising each one",
        )
    if images > high:
        return SizeAdvice(
            concept,
            images,
            kind,
            low,
            high,
            "many",
            f"{images} images; beyond about {high} a {kind} gains little while every epoch gets longer: a diverse "
            f"subset of ~{high} (drop near-duplicates first; see scan) trains as well, unless many characters or "
            "outfits are trained at once",
        )
    return SizeAdvice(
        concept, images, kind, low, high, "ok", f"{images} images is within the usual {low}-{high}"
    )
