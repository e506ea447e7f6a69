"""Optional CLIP image features: semantic near-duplicates and a zero-shot screenshot score.

Only active when the scan settings name an open_clip architecture (``clip_model``, or a path to an open_clip model
config ``.json``) and a LOCAL checkpoint (``clip_weights``); nothing is ever downloaded. torch and open_clip are
imported inside these functions only, so a scan without CLIP never imports them.

The features run once per scan, in the main process, when a judge or dataset check first asks for them
(:func:`clip_features`), over the decoded images; embeddings are cached in the workspace in one ``.npz`` per model
and checkpoint, keyed by the file's SHA-256, like every other metric.

Example::

    feats = clip_features(context)            # {} unless configured
    feats["1_cat/a.png"]["screenshot"]        # 0..1 zero-shot probability
    feats["1_cat/a.png"]["embedding"]         # unit-norm float32 vector
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from curator.dataset.workspace import Workspace
from curator.fsutil import atomic_write_bytes

#: Zero-shot prompts: the screenshot probability is the softmax mass of the first group against the second.
SCREENSHOT_PROMPTS = (
    "a screenshot of a computer program",
    "a screenshot of a website",
    "a screenshot of a phone screen",
    "a screenshot of a video game with a user interface",
)
OTHER_PROMPTS = (
    "a photo",
    "a painting",
    "a digital illustration",
    "a drawing",
    "a 3d render",
    "a picture of a person",
)
BATCH = 16


@dataclass(frozen=True)
class ClipConfig:
    """Which local CLIP model to use: an open_clip architecture name (or config .json path) and a checkpoint file."""

    model: str  # open_clip architecture name, or path to a model config .json
    weights: Path  # local checkpoint (.pt / .bin / .safetensors); never downloaded

    @property
    def key(self) -> str:
        """Short digest naming the cache file: model, checkpoint path, size and mtime."""
        st = self.weights.stat()
        text = f"{self.model}|{self.weights.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def config_from(settings: Any) -> ClipConfig | None:
    """The CLIP configuration of scan settings, or None when CLIP is not configured."""
    model, weights = getattr(settings, "clip_model", None), getattr(settings, "clip_weights", None)
    if not model or not weights:
        return None
    return ClipConfig(str(model), Path(weights))


def clip_features(context: Any, records: list[Any] | None = None) -> dict[str, dict[str, Any]]:
    """``rel -> {"embedding", "screenshot"}`` for the decoded records, computed once per scan (``context.cache``).

    Returns {} when CLIP is not configured or cannot run; the reason is then in ``context.cache["clip_error"]``.
    """
    if "clip" in context.cache:
        return context.cache["clip"]
    config = config_from(context.settings)
    records = [r for r in (records if records is not None else context.records) if r.decoded]
    result: dict[str, dict[str, Any]] = {}
    if config is not None and records:
        try:
            result = _compute(config, records, _workspace_of(context.settings, records))
        except Exception as exc:  # a bad checkpoint or config must not sink the scan: say why instead
            context.cache["clip_error"] = f"{type(exc).__name__}: {exc}"[:300]
    context.cache["clip"] = result
    return result


def _workspace_of(settings: Any, records: list[Any]) -> Workspace:
    item = records[0].item
    depth = len(PurePosixPath(item.rel).parts) - (1 if item.is_reg else 0)
    root = Path(item.path).parents[depth - 1] if depth >= 1 else Path(item.path).parent
    return Workspace.for_dataset(root, getattr(settings, "workspace", None))


def _compute(config: ClipConfig, records: list[Any], workspace: Workspace) -> dict[str, dict[str, Any]]:
    cache_path = workspace.root / f"clip-{config.key}.npz"
    cached = _read_cache(cache_path)
    todo = [r for r in records if str(r.metrics.get("sha256", "")) not in cached]
    model = None
    if todo:
        model = _Model(config)
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            vectors = model.embed([_rgb_of(r) for r in batch])
            for record, vec in zip(batch, vectors, strict=True):
                cached[str(record.metrics.get("sha256", record.item.rel))] = vec
        _write_cache(cache_path, cached)
    probs_by_key = _screenshot_probabilities(config, model, cached)
    out = {}
    for r in records:
        key = str(r.metrics.get("sha256", r.item.rel))
        if key in cached:
            out[r.item.rel] = {"embedding": cached[key], "screenshot": probs_by_key[key]}
    return out


def _screenshot_probabilities(
    config: ClipConfig, model: _Model | None, vectors: dict[str, np.ndarray]
) -> dict[str, float]:
    keys = list(vectors)
    if not keys:
        return {}
    model = model or _Model(config)
    texts = model.text_embeddings(SCREENSHOT_PROMPTS + OTHER_PROMPTS)
    logits = model.logit_scale * (np.stack([vectors[k] for k in keys]) @ texts.T)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    shot = probs[:, : len(SCREENSHOT_PROMPTS)].sum(axis=1)
    return {k: round(float(p), 4) for k, p in zip(keys, shot, strict=True)}


def _rgb_of(record: Any) -> np.ndarray:
    from curator.images.loader import load_view

    return load_view(Path(record.item.path)).rgb


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is recomputed


def _write_cache(path: Path, vectors: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(list(vectors), dtype=str), vectors=np.stack(list(vectors.values())))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


class _Model:
    """A loaded open_clip model with its preprocessing and tokenizer (torch imported here only)."""

    def __init__(self, config: ClipConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach the network
        import open_clip
        import torch

        name = config.model
        if name.endswith(".json") and Path(name).is_file():
            open_clip.add_model_config(Path(name))
            name = Path(name).stem
        if not config.weights.is_file():
            raise FileNotFoundError(f"CLIP weights not found: {config.weights}")
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None, pretrained_text=False
        )
        open_clip.load_checkpoint(model, str(config.weights))
        model.eval()
        self.torch = torch
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(name)
        self.logit_scale = float(model.logit_scale.exp().item())

    def embed(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Unit-norm image embeddings of uint8 RGB arrays."""
        from PIL import Image

        batch = self.torch.stack([self.preprocess(Image.fromarray(a)) for a in images])
        with self.torch.no_grad():
            feats = self.model.encode_image(batch).float()
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return [f.numpy().astype(np.float32) for f in feats]

    def text_embeddings(self, prompts: tuple[str, ...]) -> np.ndarray:
        """Unit-norm text embeddings of ``prompts``."""
        with self.torch.no_grad():
            feats = self.model.encode_text(self.tokenizer(list(prompts))).float()
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return feats.numpy().astype(np.float32)
