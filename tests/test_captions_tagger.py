"""The WD14 tagger on a tiny ONNX model whose scores are known: preprocessing (BGR, white padding, input size),
thresholds per category, confidence order, exclusion, always-first, ratings, underscores; the merge modes; the cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _tagger_fixtures import ROWS, build_tagger, expected_scores

from curator.captions.merge import merge_line
from curator.captions.store import SuggestionStore
from curator.captions.suggest import TaggerSource, suggest
from curator.captions.tagger import (
    MissingExtra,
    TaggerError,
    TagSettings,
    WD14Tagger,
    prepare_image,
    providers,
    select_tags,
)
from curator.dataset.discover import discover
from curator.dataset.workspace import Workspace

BLUE, RED, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> WD14Tagger:
    return WD14Tagger.load(build_tagger(tmp_path_factory.mktemp("tagger")))


def _solid(colour: tuple[int, int, int], width: int = 64, height: int = 64) -> np.ndarray:
    return np.full((height, width, 3), colour, dtype=np.uint8)


def test_the_model_sees_bgr_padded_on_white_at_its_input_size(tagger: WD14Tagger) -> None:
    assert tagger.size == 448 and not tagger.channels_first
    prepared = prepare_image(_solid(BLUE, 30, 20), tagger.size)
    assert prepared.shape == (448, 448, 3)
    assert prepared[224, 224].tolist() == [255, 0, 0]  # blue is channel 0: BGR
    assert prepared[0, 224].tolist() == [255, 255, 255]  # the padding band is white
    # the model's real output equals the scores the known weights give for these channel means
    images = [_solid(BLUE), _solid(RED), _solid((0, 0, 0), 64, 32)]
    scores = tagger.run(np.stack([tagger.preprocess(i) for i in images]).astype(np.float32))
    means = [
        [255, 0, 0],
        [0, 0, 255],
        [127.5, 127.5, 127.5],
    ]  # BGR; the black 2:1 image is half white padding
    np.testing.assert_allclose(scores, expected_scores(np.array(means)), atol=2e-3)


def test_a_channels_first_export_at_another_size_gets_the_same_scores(
    tmp_path: Path, tagger: WD14Tagger
) -> None:
    other = WD14Tagger.load(build_tagger(tmp_path / "nchw", size=384, channels_first=True))
    assert (other.size, other.channels_first) == (384, True)
    images = [_solid(BLUE, 50, 30), _solid(RED)]
    assert other.predict(images) == tagger.predict(images)


def test_cuda_is_asked_for_only_where_onnxruntime_has_it() -> None:
    assert providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers(gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_thresholds_categories_and_confidence_order(tagger: WD14Tagger) -> None:
    blue, red = tagger.predict([_solid(BLUE), _solid(RED)])
    tags = select_tags(blue, tagger.tags, TagSettings())
    # blue_sky 0.982, solo 0.731, ^_^ 0.622, hatsune_miku (character) 0.5, simple_background 0.45; faint 0.27 out
    assert tags == ["blue sky", "solo", "^_^", "hatsune miku", "simple background"]
    assert "red theme" not in tags and "red theme" in select_tags(red, tagger.tags, TagSettings())
    # the character threshold is separate: hatsune_miku (0.5) stays at a general threshold of 0.6
    assert select_tags(blue, tagger.tags, TagSettings(threshold=0.6)) == [
        "blue sky",
        "solo",
        "^_^",
        "hatsune miku",
    ]
    assert "hatsune miku" not in select_tags(blue, tagger.tags, TagSettings(character_threshold=0.6))
    assert "faint tag" in select_tags(blue, tagger.tags, TagSettings(threshold=0.2))
    assert select_tags(blue, tagger.tags, TagSettings(underscores=True))[:3] == ["blue_sky", "solo", "^_^"]


def test_ratings_only_when_asked_exclusion_and_always_first(tagger: WD14Tagger) -> None:
    (blue,) = tagger.predict([_solid(BLUE)])
    rating_names = {name for name, category, _, _ in ROWS if category == 9}
    assert not rating_names & set(select_tags(blue, tagger.tags, TagSettings()))
    settings = TagSettings(
        ratings=True, exclude=("Solo", "blue_sky"), always_first=("simple background", "not found")
    )
    assert select_tags(blue, tagger.tags, settings) == ["simple background", "general", "^_^", "hatsune miku"]


def test_merge_modes_and_the_trigger_first() -> None:
    new = ["smile", "outdoors"]
    assert merge_line("", new, "new-only", "sks") == "sks, smile, outdoors"
    assert merge_line("1girl, smile", new, "replace", "sks") == "sks, smile, outdoors"
    assert merge_line("1girl, smile", new, "append", "sks") == "sks, 1girl, smile, outdoors"
    assert merge_line("1girl, smile", new, "prepend") == "outdoors, 1girl, smile"
    assert merge_line("1girl, ohwx woman", new, "append", "ohwx") == "ohwx woman, 1girl, smile, outdoors"
    assert merge_line("sks, a ||| b", new, "append", "sks") == "sks, a ||| b, smile, outdoors"
    assert merge_line("smile,outdoors", new, "append") == "smile,outdoors"  # nothing new: left as written
    with pytest.raises(ValueError):
        merge_line("", new, "merge")


def test_cache_is_keyed_by_image_and_model(tmp_path: Path, tagger: WD14Tagger) -> None:
    from PIL import Image

    root = tmp_path / "ds" / "1_x"
    root.mkdir(parents=True)
    for name, colour in (("a", BLUE), ("b", RED)):
        Image.new("RGB", (32, 32), colour).save(root / f"{name}.png")
    items = discover(tmp_path / "ds").train_items
    ws = Workspace.for_dataset(tmp_path / "ds").ensure()
    source = TaggerSource(tagger, TagSettings())
    with SuggestionStore.open(ws) as store:
        first = suggest(items, source, store, batch_size=1)
        assert (first.ran, first.cached) == (2, 0)
        again = suggest(items, TaggerSource(tagger, TagSettings(threshold=0.6)), store)
        assert (again.ran, again.cached) == (0, 2)  # another threshold reuses the scores
        assert again.tags["1_x/a.png"] == ["blue sky", "solo", "^_^", "hatsune miku"]
        Image.new("RGB", (32, 32), GREEN).save(root / "a.png")  # a changed image is tagged again
        changed = suggest(items, source, store)
        assert (changed.ran, changed.cached) == (1, 1) and "blue sky" not in changed.tags["1_x/a.png"]
        lower = suggest(items, TaggerSource(tagger, TagSettings(threshold=0.01)), store)
        assert lower.ran == 2  # scores under the cached floor were not kept: run again
        other = tmp_path / "other"
        build_tagger(other)
        (other / "selected_tags.csv").write_text(
            (other / "selected_tags.csv").read_text().replace("solo", "alone"), encoding="utf-8"
        )
        renamed = suggest(items, TaggerSource(WD14Tagger.load(other), TagSettings()), store)
        assert renamed.ran == 2 and "alone" in renamed.tags["1_x/b.png"]  # another model: another key


def test_bad_folders_and_a_missing_onnxruntime_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TaggerError, match="missing model.onnx, selected_tags.csv"):
        WD14Tagger.load(tmp_path)
    folder = build_tagger(tmp_path / "t")
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(TaggerError, match="cannot load"):
        WD14Tagger.load(folder)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra, match=r"dreamcurate\[tagger\]"):
        WD14Tagger.load(build_tagger(tmp_path / "u"))
