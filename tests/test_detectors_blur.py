"""blurry: defocus and motion blur found and told apart (direction named), quiet on sharp photos, on a sharp subject
over a soft background and on a dataset drawn soft throughout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _detector_images import judge_all, photo, record_for, save
from PIL import Image, ImageFilter

from curator.checks.blur import (
    BlurCheck,
    blur_measures,
    sample_tiles,
    sharpness_profile,
)
from curator.findings import Severity

CHECK = BlurCheck()


def _shift_mean(img: Image.Image, offsets: list[tuple[int, int]]) -> Image.Image:
    """The mean of ``img`` shifted by every (dx, dy) (edges replicated): a blur by that point set."""
    a = np.asarray(img, np.float32)
    pad = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    p = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = a.shape[:2]
    out = sum(p[pad + dy : pad + dy + h, pad + dx : pad + dx + w] for dx, dy in offsets) / len(offsets)
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def motion(img: Image.Image, length: int, angle: int) -> Image.Image:
    """Linear motion blur of ``length`` px, horizontal (0) or diagonal up-right (45)."""
    half = length // 2
    steps = range(-half, half + 1)
    offsets = [(t, 0) for t in steps] if angle == 0 else [(t, -t) for t in steps]
    return _shift_mean(img, offsets)


def defocus(img: Image.Image, radius: int) -> Image.Image:
    """A disk (pillbox) blur of ``radius`` px."""
    r = radius
    return _shift_mean(
        img, [(x, y) for x in range(-r, r + 1) for y in range(-r, r + 1) if x * x + y * y <= r * r]
    )


def _dataset(tmp_path: Path, extra: dict[str, Image.Image]) -> list:
    records = [record_for(save(photo(i), tmp_path / f"sharp{i}.png"), [CHECK]) for i in range(8)]
    records += [record_for(save(img, tmp_path / f"{name}.png"), [CHECK]) for name, img in extra.items()]
    return records


def test_defocus_and_motion_found_and_told_apart(tmp_path: Path) -> None:
    extra = {
        "defocus": defocus(photo(100), 4),
        "motion_h": motion(photo(101), 15, 0),
        "motion_d": motion(photo(102), 15, 45),
    }
    found = {f.path: f for f in judge_all(CHECK, _dataset(tmp_path, extra))}
    assert set(found) == {"defocus.png", "motion_h.png", "motion_d.png"}
    assert found["defocus.png"].evidence["kind"] == "defocus"
    assert found["defocus.png"].evidence["metric"] == "sharpness_best"
    for name, angle in (("motion_h.png", 0.0), ("motion_d.png", 45.0)):
        f = found[name]
        assert f.evidence["kind"] == "motion" and f.evidence["metric"] == "sharpness_worst"
        assert f.evidence["direction_deg"] == angle, f.evidence
        assert f"{angle:g} degrees" in f.message
        assert f.evidence["sharpness_worst"] < f.evidence["threshold"] <= f.evidence["dataset_median"]


def test_motion_blur_keeps_edges_along_it_crisp(tmp_path: Path) -> None:
    # the old single-number measure missed this: edges along the motion stay sharp, so the best orientation is high
    rec = record_for(save(motion(photo(3), 21, 0), tmp_path / "m.png"), [CHECK])
    m = rec.metrics
    assert m["sharpness_best"] > 0.8 and m["sharpness_worst"] < 0.4 and m["worst_angle"] == 0.0


def test_sharp_subject_on_soft_background_is_not_blurry(tmp_path: Path) -> None:
    sharp = photo(5)
    background = defocus(sharp, 8)
    mask = Image.new("L", sharp.size, 0)
    mask.paste(255, (120, 80, 360, 280))
    bokeh = Image.composite(sharp, background, mask.filter(ImageFilter.GaussianBlur(2)))
    assert judge_all(CHECK, _dataset(tmp_path, {"bokeh": bokeh})) == []


def test_soft_dataset_is_not_flagged_wholesale(tmp_path: Path) -> None:
    records = [record_for(save(defocus(photo(i), 3), tmp_path / f"soft{i}.png"), [CHECK]) for i in range(9)]
    assert judge_all(CHECK, records) == []
    # without the dataset median (too few images) the absolute thresholds alone still flag them
    assert len(judge_all(CHECK, records[:3])) == 3


def test_measure_is_resolution_independent(tmp_path: Path) -> None:
    big = photo(7, (2000, 1500))  # read at the 1024 px detail level
    small = big.resize((1000, 750), Image.Resampling.BOX)
    a = record_for(save(big, tmp_path / "big.png"), [CHECK]).metrics
    b = record_for(save(small, tmp_path / "small.png"), [CHECK]).metrics
    assert abs(a["sharpness_best"] - b["sharpness_best"]) < 0.1


def test_blur_that_leaves_no_steep_edge_is_still_found(tmp_path: Path) -> None:
    # a disk of 16 px at 960 px: too few steep edges left in any orientation to compare them (no sharpness_best),
    # but the steepest edges anywhere say it (sharpness_any), in a dataset of sharp photos and on its own
    heavy = record_for(save(defocus(photo(100, (960, 720)), 16), tmp_path / "heavy.png"), [CHECK])
    assert heavy.metrics["sharpness_best"] is None and heavy.metrics["sharpness_any"] < 0.3
    for records in (_dataset(tmp_path, {}) + [heavy], [heavy]):
        found = [f for f in judge_all(CHECK, records) if f.path == "heavy.png"]
        assert len(found) == 1 and found[0].evidence["kind"] == "no_crisp_edges", found
        assert found[0].evidence["metric"] == "sharpness_any" and found[0].severity is Severity.ERROR
        assert found[0].message.startswith("Blurred throughout")
    sharp = _dataset(tmp_path, {})
    assert all(r.metrics["sharpness_any"] > 0.9 for r in sharp) and judge_all(CHECK, sharp) == []


def test_flat_image_has_no_verdict() -> None:
    flat = np.full((64, 64), 128.0, np.float32)
    assert sharpness_profile(sample_tiles(flat)) == ([None] * 8, None)
    assert blur_measures(sharpness_profile(sample_tiles(flat))[0]) == {
        "sharpness_best": None,
        "sharpness_worst": None,
        "worst_angle": None,
    }


def test_severity_follows_strength(tmp_path: Path) -> None:
    # a Gaussian of 1.3 px lands between the two thresholds (sharpness_best about 0.56), a disk of 6 px well below
    mild = photo(100).filter(ImageFilter.GaussianBlur(1.3))
    found = {
        f.path: f.severity
        for f in judge_all(CHECK, _dataset(tmp_path, {"mild": mild, "strong": defocus(photo(101), 6)}))
    }
    assert found == {"mild.png": Severity.WARNING, "strong.png": Severity.ERROR}
