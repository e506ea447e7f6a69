"""Optional CLIP features: the code path end to end with a tiny randomly initialised open_clip model saved locally
(semantics are not tested: the weights are random); without weights nothing imports torch; bad weights give a
finding, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _detector_images import photo, save, window_screenshot

from curator.scan.results import ScanSettings
from curator.scan.run import scan

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("clip")
    config = folder / "dreamcurate-tiny-clip.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("dreamcurate-tiny-clip", pretrained=None)
    weights = folder / "tiny.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


def _dataset(root: Path) -> Path:
    data = root / "1_thing"
    save(photo(1, (320, 240)), data / "a.png")
    save(photo(1, (320, 240)).resize((300, 225)), data / "a_small.png")
    save(photo(2, (320, 240)), data / "b.png")
    save(window_screenshot((820, 610)), data / "window.png")
    return data


def test_clip_path_end_to_end(tmp_path: Path, tiny_clip: tuple[Path, Path]) -> None:
    config, weights = tiny_clip
    data = _dataset(tmp_path)
    settings = ScanSettings(
        workers=1,
        workspace=tmp_path / "ws",
        progress=False,
        clip_model=str(config),
        clip_weights=weights,
        # hashes off (no dHash distance is <= -1), near-identical embeddings on: only CLIP can link a pair
        params={"near_duplicate": {"max_dhash": -1, "clip_cosine": 0.99}},
    )
    result = scan(data, settings)
    assert not [f for f in result.all_findings() if f.code in ("clip_unavailable", "check_error")]
    shot = next(f for f in result.record("window.png").findings if f.code == "screenshot")
    assert 0.0 <= shot.evidence["layers"]["clip"] <= 1.0
    near = [f for f in result.all_findings() if f.code == "near_duplicate"]
    assert near and all("cosine" in f.evidence for f in near)
    assert {f.path for f in near} | {f.evidence["keeper"] for f in near} >= {"a.png", "a_small.png"}
    assert list((tmp_path / "ws").glob("clip-*.npz"))


def test_bad_weights_give_a_finding(tmp_path: Path, tiny_clip: tuple[Path, Path]) -> None:
    data = _dataset(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    settings = ScanSettings(
        workers=1, workspace=tmp_path / "ws", progress=False, clip_model=str(tiny_clip[0]), clip_weights=bad
    )
    result = scan(data, settings)
    assert [f.code for f in result.findings if f.code == "clip_unavailable"] == ["clip_unavailable"]


def test_scan_without_clip_never_imports_torch(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from curator.scan.results import ScanSettings\n"
        "from curator.scan.run import scan\n"
        f"r = scan(Path({str(data)!r}), ScanSettings(workers=1, workspace=Path({str(tmp_path / 'ws')!r}),"
        " progress=False))\n"
        "print(json.dumps([m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_embeddings_are_cached_and_only_changed_images_are_embedded(
    tmp_path: Path, tiny_clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from curator.checks import clip_features

    config, weights = tiny_clip
    data = _dataset(tmp_path)
    settings = ScanSettings(
        workers=1, workspace=tmp_path / "ws", progress=False, clip_model=str(config), clip_weights=weights
    )
    embedded: list[int] = []
    real_embed = clip_features._Model.embed

    def counting_embed(self, images):  # type: ignore[no-untyped-def]
        embedded.append(len(images))
        return real_embed(self, images)

    monkeypatch.setattr(clip_features._Model, "embed", counting_embed)
    first = scan(data, settings)
    assert sum(embedded) == 4
    embedded.clear()
    again = scan(data, settings)
    assert embedded == []  # every embedding came from the workspace cache
    shots = [
        next(f for f in r.record("window.png").findings if f.code == "screenshot").evidence["layers"]["clip"]
        for r in (first, again)
    ]
    assert shots[0] == shots[1]
    save(photo(7, (320, 240)), data / "b.png")  # one image changes
    scan(data, settings)
    assert embedded == [1]
