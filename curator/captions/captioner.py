"""Natural-language captions from a local transformers folder (BLIP, Florence-2 and other image-to-text models that
transformers loads natively), read with ``local_files_only=True``: nothing is ever downloaded.

torch and transformers are imported here only, when a captioner is loaded (``dreamcurate --help``, ``scan``,
``tags`` and ``plan`` never import them).

Example::

    captioner = Captioner.load(Path("models/blip-large"), prompt="a photography of", max_length=75)
    print(captioner.caption([view.rgb for view in views]))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from curator.captions.tagger import TaggerError

#: the task Florence-2 runs when no --task is given (its short caption)
FLORENCE_DEFAULT_TASK = "<CAPTION>"
#: weight files whose bytes define a model (what its cache key hashes), in the order transformers prefers them
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


@dataclass
class Captioner:
    """A loaded image-to-text model, its processor, the prompt (BLIP's text prefix or Florence-2's task token)
    and the longest caption it writes (new tokens)."""

    folder: Path
    model: Any
    processor: Any
    prompt: str | None
    max_length: int
    device: str

    @classmethod
    def load(cls, folder: Path, prompt: str | None = None, max_length: int = 75) -> Captioner:
        """Load ``folder``; :class:`TaggerError` when transformers cannot read it as an image-to-text model."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise TaggerError(f"{folder} is not a transformers model folder (no config.json)")
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
            from transformers.utils import logging as hf_logging
        except ImportError as exc:  # pragma: no cover - both are dependencies of the trainer
            raise TaggerError(f"the captioner needs torch and transformers: {exc}") from exc
        hf_logging.disable_progress_bar()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its warnings about a folder it cannot read become our one line
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # transformers raises many kinds for a folder it cannot read: one line each
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TaggerError(f"cannot load {folder} as an image-to-text model: {reason}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)  # type: ignore[arg-type]  # transformers' stubs type .to() as a model wrapper
        model.eval()
        if prompt is None and _model_type(folder) == "florence2":
            prompt = FLORENCE_DEFAULT_TASK
        return cls(folder, model, processor, prompt, max_length, device)

    @property
    def files(self) -> list[Path]:
        """The config and weight files (what the cache key hashes)."""
        weights = sorted(p for pattern in WEIGHT_PATTERNS for p in self.folder.glob(pattern))
        return [self.folder / "config.json", *weights]

    @property
    def settings_key(self) -> str:
        """The settings that change the output, part of the cache key."""
        return json.dumps({"prompt": self.prompt, "max_length": self.max_length})

    def caption(self, images: Sequence[np.ndarray]) -> list[str]:
        """One caption per RGB uint8 image, generated in one batch."""
        import torch

        if not images:
            return []
        pil = [Image.fromarray(rgb) for rgb in images]
        kwargs: dict[str, Any] = {"images": pil, "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(pil)
        inputs = self.processor(**kwargs).to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_length)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(str(text).split()) for text in texts]


def _model_type(folder: Path) -> str:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(data.get("model_type", "")) if isinstance(data, dict) else ""
