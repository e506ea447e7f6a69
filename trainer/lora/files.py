"""The LoRA file: one ``.safetensors`` with Kohya's keys and ``ss_*`` metadata, written atomically.

Keys: ``lora_unet_<path>`` / ``lora_te_<path>`` with ``.lora_down.weight``, ``.lora_up.weight`` and ``.alpha`` (see
``trainer.lora.targets``). Metadata as Kohya's ``train_network.py`` writes it (every value a string): the network
(``ss_network_module``, ``ss_network_dim``, ``ss_network_alpha``, ``ss_network_args``), the base model (name, both
of WebUI's hashes, ``ss_base_model_version`` such as ``sd_v1``), the dataset (``ss_tag_frequency``: per folder, each
lower-cased comma-separated tag and how many captions hold it), and the tensor hashes sd-webui's additional-networks
index files by (``sshs_model_hash``, ``sshs_legacy_hash``).

Example::

    write_lora(Path("out/sks.safetensors"), tensors, metadata, precision="fp16")
    tensors, metadata = read_lora(Path("out/sks.safetensors"))
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainer.models.errors import ModelError

NETWORK_MODULE = "networks.lora"
PRECISIONS = ("float", "fp16", "bf16")


def base_model_version(family: str, v_parameterization: bool) -> str:
    """Kohya's ``ss_base_model_version`` for SD 1.x / 2.x: ``sd_v1``, ``sd_v2``, with ``_v`` for v-prediction."""
    return ("sd_v2" if family == "sd2" else "sd_v1") + ("_v" if v_parameterization else "")


def legacy_model_hash(path: Path) -> str:
    """WebUI's old model hash: sha256 of the 64 KiB at 1 MiB, first 8 hex digits."""
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_model_metadata(base: Path) -> dict[str, str]:
    """``ss_sd_model_name`` and, for a file, WebUI's two hashes of it (computed once per file version)."""
    meta = {"ss_sd_model_name": base.name}
    if base.is_file():
        stat = base.stat()
        meta["ss_sd_model_hash"] = legacy_model_hash(base)
        meta["ss_new_sd_model_hash"] = _file_sha256(str(base.resolve()), stat.st_size, stat.st_mtime_ns)
    return meta


def tag_frequency(captions: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Kohya's ``ss_tag_frequency`` from (folder name, caption) pairs: tags split at commas, stripped, lower-cased."""
    frequency: dict[str, dict[str, int]] = {}
    for folder, caption in captions:
        counts = frequency.setdefault(folder, {})
        for tag in caption.split(","):
            tag = tag.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return frequency


def network_metadata(
    dim: int, alpha: float, conv_dim: int, conv_alpha: float, family: str, v_parameterization: bool
) -> dict[str, str]:
    """The minimum every Kohya-format LoRA carries (what Kohya keeps even with --no_metadata)."""
    args = {"conv_dim": str(conv_dim), "conv_alpha": str(float(conv_alpha))} if conv_dim else {}
    return {
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(float(alpha)),
        "ss_network_args": json.dumps(args),
        "ss_v2": str(family == "sd2"),
        "ss_base_model_version": base_model_version(family, v_parameterization),
    }


def _tensor_hashes(data: bytes) -> tuple[str, str]:
    """sd-webui additional-networks' hashes of a safetensors file's bytes (its tensors, and the legacy one)."""
    header = int.from_bytes(data[:8], "little")
    new = hashlib.sha256(data[8 + header :]).hexdigest()
    buffer = io.BytesIO(data)
    buffer.seek(0x100000)
    legacy = hashlib.sha256(buffer.read(0x10000)).hexdigest()[:8]
    return new, legacy


def write_lora(
    path: Path, tensors: dict[str, Any], metadata: dict[str, str], precision: str = "float"
) -> Path:
    """Write ``tensors`` (cast to ``precision``) and ``metadata`` to ``path`` atomically; returns ``path``."""
    import torch
    from safetensors.torch import save

    from curator.fsutil import atomic_write_bytes

    if precision not in PRECISIONS:
        raise ModelError(f"unknown save precision {precision!r} (float, fp16 or bf16)")
    dtype = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    cast = {k: v.detach().to("cpu", dtype).contiguous() for k, v in sorted(tensors.items())}
    # Kohya's tensor hashes are taken over the file with only its ss_* metadata.
    ss_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    model_hash, legacy_hash = _tensor_hashes(save(cast, ss_only))
    full = {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(cast, full))
    return path


def read_lora(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A Kohya-format LoRA file's tensors (float32) and metadata; ModelError when it is not one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key).float() for key in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"{path}: not a readable .safetensors file ({exc})") from exc
    names = {key.split(".", 1)[0] for key in tensors}
    bad = [k for k in tensors if not k.startswith(("lora_unet_", "lora_te_"))]
    if not tensors or bad:
        raise ModelError(
            f"{path}: not a Kohya-format SD 1.x / 2.x LoRA (keys lora_unet_... / lora_te_...; found {(bad or ['none'])[0]})"
        )
    for name in names:
        if f"{name}.lora_down.weight" not in tensors or f"{name}.lora_up.weight" not in tensors:
            raise ModelError(
                f"{path}: layer {name} lacks lora_down or lora_up (not a plain LoRA: LoCon/LoHa?)"
            )
    return tensors, metadata
