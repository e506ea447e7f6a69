"""Run a local tagger or captioner over a dataset's images, in batches, with the workspace cache: an image whose
file is unchanged since the same model (same hash, same settings that change its output) saw it is not run again.

Each image is opened once with :func:`curator.images.loader.load_view` (the one way images are opened here); a file
that cannot be decoded becomes a note, never a traceback.

Example::

    model = TaggerSource(WD14Tagger.load(folder), TagSettings())
    with SuggestionStore.open(workspace.ensure()) as store:
        result = suggest(dataset.train_items, model, store)
    print(result.tags["10_cat/a.png"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from curator.captions.captioner import Captioner
from curator.captions.parse import split_tags
from curator.captions.store import SuggestionStore, file_key
from curator.captions.tagger import SCORE_FLOOR, TagSettings, WD14Tagger, select_tags
from curator.dataset.discover import Item
from curator.images.loader import LoadError, load_view
from curator.scan.cache import FileKey

ProgressFn = Callable[[int, int], None]


class Source(Protocol):
    """A model that turns images into caption tags (a tagger or a captioner): its name, its cache key (model
    hash and output-changing settings), the input of one image (made in a worker thread), a batch run giving one
    JSON payload per image, whether a cached payload serves these settings, the tags of a payload, and what the
    report says about it."""

    kind: str

    @property
    def name(self) -> str: ...

    def cache_key(self, store: SuggestionStore) -> str: ...

    def prepare(self, rgb: np.ndarray) -> Any: ...

    def run(self, prepared: Sequence[Any]) -> list[dict[str, Any]]: ...

    def usable(self, payload: dict[str, Any]) -> bool: ...

    def tags(self, payload: dict[str, Any]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class TaggerSource:
    """A WD14 tagger with the settings that turn its scores into tags. The cache keeps its scores (above a
    floor), so another threshold or exclusion list reuses them without running the model."""

    tagger: WD14Tagger
    settings: TagSettings
    kind: str = "tagger"

    @property
    def name(self) -> str:
        """The tagger folder's name."""
        return self.tagger.folder.name

    @property
    def floor(self) -> float:
        """The lowest score these settings can keep."""
        return min(SCORE_FLOOR, self.settings.threshold, self.settings.character_threshold)

    def cache_key(self, store: SuggestionStore) -> str:
        """The model's hash (its scores do not depend on the thresholds)."""
        return "wd14:" + store.model_hash(self.tagger.files)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The model input of one RGB image (padded, resized, BGR)."""
        return self.tagger.preprocess(rgb)

    def run(self, prepared: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """One payload ({"floor", "scores": {row: score}}) per prepared image."""
        return [
            {"floor": self.floor, "scores": {str(k): v for k, v in s.items()}}
            for s in self.tagger.predict_prepared(prepared, self.floor)
        ]

    def usable(self, payload: dict[str, Any]) -> bool:
        """A cached payload serves when it kept scores at least as low as these settings need."""
        return isinstance(payload.get("scores"), dict) and float(payload.get("floor", 1.0)) <= self.floor

    def tags(self, payload: dict[str, Any]) -> list[str]:
        """The tags these settings pick from a payload."""
        count = len(self.tagger.tags)
        scores = {int(k): float(v) for k, v in payload["scores"].items() if 0 <= int(k) < count}
        return select_tags(scores, self.tagger.tags, self.settings)

    def describe(self) -> dict[str, Any]:
        """What the report says about this run."""
        s = self.settings
        return {
            "kind": self.kind,
            "name": self.name,
            "folder": str(self.tagger.folder),
            "provider": self.tagger.provider,
            "input_size": self.tagger.size,
            "threshold": s.threshold,
            "character_threshold": s.character_threshold,
            "ratings": s.ratings,
            "underscores": s.underscores,
            "exclude": list(s.exclude),
            "always_first": list(s.always_first),
        }


@dataclass
class CaptionerSource:
    """A natural-language captioner; its caption is split at commas like any caption training reads."""

    captioner: Captioner
    kind: str = "captioner"

    @property
    def name(self) -> str:
        """The model folder's name."""
        return self.captioner.folder.name

    def cache_key(self, store: SuggestionStore) -> str:
        """The model's hash and the prompt and length (both change the text)."""
        return f"i2t:{store.model_hash(self.captioner.files)}:{self.captioner.settings_key}"

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The image as it is (the processor prepares the batch)."""
        return rgb

    def run(self, prepared: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """One payload ({"text"}) per image."""
        return [{"text": text} for text in self.captioner.caption(prepared)]

    def usable(self, payload: dict[str, Any]) -> bool:
        """Any stored text serves (the key already holds the settings)."""
        return isinstance(payload.get("text"), str)

    def tags(self, payload: dict[str, Any]) -> list[str]:
        """The caption's comma-separated parts."""
        return split_tags(payload["text"])

    def describe(self) -> dict[str, Any]:
        """What the report says about this run."""
        c = self.captioner
        return {
            "kind": self.kind,
            "name": self.name,
            "folder": str(c.folder),
            "device": c.device,
            "prompt": c.prompt,
            "max_length": c.max_length,
        }


@dataclass
class Suggestions:
    """Tags per image (rel -> tags), the images that could not be read, and where the answers came from."""

    tags: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ran: int = 0  # images the model ran on
    cached: int = 0  # images answered from the cache
    model_key: str = ""


def suggest(
    items: Sequence[Item],
    source: Source,
    store: SuggestionStore | None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
) -> Suggestions:
    """Tags for every item: from the cache where the image and the model are unchanged, else by running the
    model in batches of ``batch_size``. ``store`` None: no cache (a workspace that cannot be written)."""
    out = Suggestions(model_key=source.cache_key(store) if store is not None else "")
    keys = {item.rel: _key_or_none(item) for item in items}
    cached = _cached(store, out.model_key, keys, source)
    todo = [item for item in items if item.rel not in cached]
    done = len(items) - len(todo)
    for item in items:
        if item.rel in cached:
            out.tags[item.rel] = source.tags(cached[item.rel])
    out.cached = done
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="caption-load") as pool:
        # decode and prepare the next batch while the model runs on this one (two batches in memory at most)
        pending = [pool.submit(_prepare, item, source) for item in batches[0]] if batches else []
        for index, batch in enumerate(batches):
            if progress is not None:
                progress(done, len(items))
            loaded = [future.result() for future in pending]
            following = batches[index + 1] if index + 1 < len(batches) else []
            pending = [pool.submit(_prepare, item, source) for item in following]
            _run_batch(batch, loaded, source, store, keys, out)
            done += len(batch)
    if progress is not None:
        progress(done, len(items))
    return out


def _run_batch(
    batch: Sequence[Item],
    loaded: Sequence[Any],
    source: Source,
    store: SuggestionStore | None,
    keys: dict[str, FileKey | None],
    out: Suggestions,
) -> None:
    """Run the model on the images of ``batch`` that decoded; keep their tags, cache their payloads."""
    ready = []
    for item, prepared in zip(batch, loaded, strict=True):
        if isinstance(prepared, LoadError):
            out.notes.append(f"{item.rel}: skipped ({prepared.code}: {prepared.message})")
        else:
            ready.append((item, prepared))
    payloads = source.run([prepared for _, prepared in ready]) if ready else []
    rows = []
    for (item, _), payload in zip(ready, payloads, strict=True):
        out.tags[item.rel] = source.tags(payload)
        key = keys[item.rel]
        if key is not None:
            rows.append((item.rel, key, payload))
    if store is not None and rows:
        store.put_predictions(out.model_key, rows)
    out.ran += len(ready)


def _prepare(item: Item, source: Source) -> Any:
    """The model input of one image, or the :class:`LoadError` that stopped it (raised in a worker thread)."""
    try:
        return source.prepare(load_view(item.path).rgb)
    except LoadError as exc:
        return exc


def _key_or_none(item: Item) -> FileKey | None:
    try:
        return file_key(item.path)
    except OSError:
        return None


def _cached(
    store: SuggestionStore | None, model: str, keys: dict[str, FileKey | None], source: Source
) -> dict[str, dict[str, Any]]:
    if store is None:
        return {}
    known = store.predictions(model, [(rel, key) for rel, key in keys.items() if key is not None])
    return {rel: payload for rel, payload in known.items() if source.usable(payload)}
