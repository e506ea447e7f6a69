"""WD14-style ONNX taggers (SmilingWolf's v2 and v3 layout), run locally with onnxruntime; nothing is downloaded.

A tagger folder holds ``model.onnx`` and ``selected_tags.csv`` (columns ``tag_id,name,category,count``; category 0
general, 4 character, 9 rating). The model takes a batch of square images, ``[N, S, S, 3]`` float32, BGR, 0..255,
the image padded to a square on white and resized to S (the model's input size); it outputs one sigmoid score per
row of the CSV. (An export with channels first, ``[N, 3, S, S]``, is read from its input shape and fed so.)

Example::

    tagger = WD14Tagger.load(Path("models/wd-v1-4-convnext-tagger-v2"))
    scores = tagger.predict([view.rgb for view in views])          # one {row: score} per image
    print(select_tags(scores[0], tagger.tags, TagSettings(threshold=0.35)))
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from curator.captions.parse import normalize_tag

GENERAL, CHARACTER, RATING = 0, 4, 9
#: the size SmilingWolf's taggers take when the model does not declare one
DEFAULT_SIZE = 448
#: scores kept per image (the cache stores these); thresholds below it run the model again
SCORE_FLOOR = 0.05
#: danbooru tags whose underscore is part of a face: turning it into a space would change the tag
KAOMOJI = frozenset(
    "0_0 (o)_(o) +_+ +_- ._. <o>_<o> <|>_<|> =_= >_< 3_3 6_9 >_o @_@ ^_^ o_o u_u x_x |_| ||_||".split()
)
MODEL_FILE, TAGS_FILE = "model.onnx", "selected_tags.csv"


class TaggerError(ValueError):
    """A tagger folder that cannot be used; the message is one line naming the file."""


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message names the extra that brings it."""


@dataclass(frozen=True)
class TagRow:
    """One row of ``selected_tags.csv``: the tag as the model knows it and its category."""

    name: str
    category: int


@dataclass(frozen=True)
class TagSettings:
    """How scores become tags (defaults as Kohya's ``tag_images_by_wd14_tagger.py``)."""

    threshold: float = 0.35  # general tags at or above this score are kept
    character_threshold: float = 0.35  # character tags at or above this score are kept
    ratings: bool = (
        False  # add the most likely rating tag (general, sensitive, ...); off: ratings never appear
    )
    underscores: bool = False  # keep danbooru's underscores (long_hair); off: spaces, fewer CLIP tokens
    exclude: tuple[str, ...] = ()  # tags never written (matched in normalised form)
    always_first: tuple[str, ...] = ()  # tags moved to the front, in this order, when the tagger finds them


def read_tags(path: Path) -> list[TagRow]:
    """The rows of a ``selected_tags.csv``; :class:`TaggerError` when it is not one."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TaggerError(f"cannot read {path}: {exc}") from exc
    try:
        tags = [TagRow(row["name"], int(row["category"])) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise TaggerError(f"{path} is not a tagger's tag list (needs name and category columns)") from exc
    if not tags:
        raise TaggerError(f"{path} lists no tags")
    return tags


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtra(
            "the tagger needs onnxruntime: pip install 'dreamcurate[tagger]' (or onnxruntime-gpu)"
        ) from exc
    return onnxruntime


def providers(available: Sequence[str]) -> list[str]:
    """The execution providers to ask for: CUDA first when this onnxruntime has it, always CPU as fallback."""
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or list(available)


@dataclass
class WD14Tagger:
    """A loaded tagger: the onnxruntime session, its tag rows, input size and layout."""

    folder: Path
    session: Any
    tags: list[TagRow]
    size: int
    channels_first: bool
    batch_limit: int | None  # a model exported with a fixed batch size takes only that many at once

    @classmethod
    def load(cls, folder: Path) -> WD14Tagger:
        """Open ``folder`` (``model.onnx`` + ``selected_tags.csv``); :class:`TaggerError` when it is not a tagger."""
        folder = Path(folder)
        missing = [name for name in (MODEL_FILE, TAGS_FILE) if not (folder / name).is_file()]
        if missing:
            raise TaggerError(f"{folder} is not a WD14-style tagger folder (missing {', '.join(missing)})")
        ort = _onnxruntime()
        tags = read_tags(folder / TAGS_FILE)
        try:
            session = ort.InferenceSession(
                str(folder / MODEL_FILE), providers=providers(ort.get_available_providers())
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged model
            raise TaggerError(f"cannot load {folder / MODEL_FILE}: {str(exc).splitlines()[0][:200]}") from exc
        shape = list(session.get_inputs()[0].shape)
        outputs = session.get_outputs()[0].shape
        if len(shape) != 4 or (isinstance(outputs[-1], int) and outputs[-1] != len(tags)):
            raise TaggerError(
                f"{folder / MODEL_FILE} takes input {shape} and gives {outputs}: not an image tagger for the "
                f"{len(tags)} tags of {TAGS_FILE}"
            )
        channels_first = shape[1] == 3 and shape[3] != 3
        side = shape[2] if channels_first else shape[1]
        size = side if isinstance(side, int) and side > 0 else DEFAULT_SIZE
        batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        return cls(folder, session, tags, size, channels_first, batch)

    @property
    def files(self) -> list[Path]:
        """The files whose bytes define this tagger (what its cache key hashes)."""
        return [self.folder / MODEL_FILE, self.folder / TAGS_FILE]

    @property
    def provider(self) -> str:
        """The execution provider onnxruntime runs on (``CPUExecutionProvider``, ``CUDAExecutionProvider``)."""
        return str(self.session.get_providers()[0])

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """An ``HxWx3`` uint8 RGB image as the model takes it: padded square on white, resized, BGR."""
        return prepare_image(rgb, self.size)

    def predict(self, images: Sequence[np.ndarray], floor: float = SCORE_FLOOR) -> list[dict[int, float]]:
        """Per image, {tag row: score} for every score at or above ``floor`` (RGB uint8 arrays in)."""
        return self.predict_prepared([self.preprocess(rgb) for rgb in images], floor)

    def predict_prepared(
        self, prepared: Sequence[np.ndarray], floor: float = SCORE_FLOOR
    ) -> list[dict[int, float]]:
        """:meth:`predict` for images already through :meth:`preprocess` (``caption`` prepares them in threads)."""
        if not prepared:
            return []
        batch = np.empty((len(prepared), *prepared[0].shape), dtype=np.float32)
        for index, image in enumerate(prepared):  # uint8 -> float32 while filling: one pass, no stack copy
            batch[index] = image
        if self.channels_first:
            batch = batch.transpose(0, 3, 1, 2)
        return [sparse_scores(row, floor) for row in self.run(batch)]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw scores ``[N, tags]`` for a prepared batch (split when the model has a fixed batch)."""
        step = self.batch_limit or len(batch)
        name = self.session.get_inputs()[0].name
        parts = [self.session.run(None, {name: batch[i : i + step]})[0] for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32)


def prepare_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad to a square on white (centred), resize to ``size`` (area when shrinking, Lanczos when growing, as Kohya
    does with OpenCV), flip RGB to BGR; uint8 ``size x size x 3`` (the batch becomes float32 0..255 when it is
    filled: a quarter of the memory while images wait in the queue)."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = rgb[..., :3]
    image = Image.fromarray(canvas)
    if side != size:
        method = Image.Resampling.BOX if side > size else Image.Resampling.LANCZOS
        image = image.resize((size, size), method)
    return np.ascontiguousarray(np.asarray(image)[..., ::-1])


def sparse_scores(row: np.ndarray, floor: float) -> dict[int, float]:
    """{index: score} of the scores at or above ``floor``, rounded to 4 places (what the cache stores)."""
    kept = np.flatnonzero(row >= floor)
    return {int(i): round(float(row[i]), 4) for i in kept}


def tag_text(name: str, underscores: bool) -> str:
    """A tag as written into the caption: with spaces unless asked to keep underscores (kaomoji keep theirs)."""
    if underscores or name in KAOMOJI:
        return name
    return name.replace("_", " ")


def select_tags(scores: dict[int, float], tags: Sequence[TagRow], settings: TagSettings) -> list[str]:
    """The caption tags of one image: thresholded by category, most confident first, excluded tags left out, the
    ``always_first`` tags moved to the front, the most likely rating (when asked) after them."""
    excluded = {normalize_tag(t) for t in settings.exclude}
    picked: list[tuple[float, int]] = []
    rating: tuple[float, int] | None = None
    for index, score in scores.items():
        row = tags[index]
        if normalize_tag(row.name) in excluded:
            continue
        if row.category == RATING:
            if settings.ratings and (rating is None or score > rating[0]):
                rating = (score, index)
            continue
        limit = settings.character_threshold if row.category == CHARACTER else settings.threshold
        if score >= limit:
            picked.append((score, index))
    picked.sort(key=lambda pair: (-pair[0], pair[1]))  # confidence, then the CSV's order on a tie
    names = [tag_text(tags[i].name, settings.underscores) for _, i in picked]
    front = [normalize_tag(t) for t in settings.always_first]
    first = [n for key in front for n in names if normalize_tag(n) == key]
    rest = [n for n in names if normalize_tag(n) not in front]
    head = [tag_text(tags[rating[1]].name, settings.underscores)] if rating else []
    return first + head + rest
