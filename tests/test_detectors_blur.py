"""blurry: fires on Gaussian-blurred images, quiet on sharp ones and on a dataset drawn soft throughout."""

from __future__ import annotations

from pathlib import Path

from _detector_images import judge_all, photo, record_for, save
from PIL import ImageFilter

from curator.checks.blur import BlurCheck, edge_sharpness
from curator.findings import Severity

CHECK = BlurCheck()


def _records(tmp_path: Path, n_sharp: int, n_blurred: int, radius: float = 3.0) -> list:
    records = []
    for i in range(n_sharp):
        records.append(record_for(save(photo(i), tmp_path / f"sharp{i}.png"), [CHECK]))
    for i in range(n_blurred):
        img = photo(100 + i).filter(ImageFilter.GaussianBlur(radius))
        records.append(record_for(save(img, tmp_path / f"blur{i}.png"), [CHECK]))
    return records


def test_blurred_fires_sharp_quiet(tmp_path: Path) -> None:
    records = _records(tmp_path, n_sharp=8, n_blurred=2)
    found = {f.path: f for f in judge_all(CHECK, records)}
    assert set(found) == {"blur0.png", "blur1.png"}
    f = found["blur0.png"]
    assert f.code == "blurry" and f.severity is Severity.ERROR
    assert f.evidence["metric"] == "edge_sharpness"
    assert f.evidence["edge_sharpness"] < f.evidence["threshold"]
    assert f.evidence["dataset_median"] is not None


def test_soft_dataset_is_not_flagged_wholesale(tmp_path: Path) -> None:
    # every image softened the same way: the relative test keeps the finding for outliers only
    records = _records(tmp_path, n_sharp=0, n_blurred=9, radius=1.2)
    assert judge_all(CHECK, records) == []
    # without the dataset median (too few images) the absolute threshold alone still flags them
    assert len(judge_all(CHECK, records[:3])) == 3


def test_measure_is_resolution_independent(tmp_path: Path) -> None:
    big = photo(7, (1600, 1200))
    small = big.resize((800, 600))
    a = record_for(save(big, tmp_path / "big.png"), [CHECK]).metrics["edge_sharpness"]
    b = record_for(save(small, tmp_path / "small.png"), [CHECK]).metrics["edge_sharpness"]
    assert abs(a - b) < 0.1


def test_flat_image_has_no_verdict() -> None:
    import numpy as np

    assert edge_sharpness(np.full((64, 64), 128.0, np.float32)) is None


def test_severity_follows_strength(tmp_path: Path) -> None:
    # radius 1.0 lands between the two thresholds (edge_sharpness about 0.44), radius 3 well below both (about 0.29)
    records = [record_for(save(photo(i), tmp_path / f"sharp{i}.png"), [CHECK]) for i in range(8)]
    for name, radius in (("mild", 1.0), ("strong", 3.0)):
        img = photo(100).filter(ImageFilter.GaussianBlur(radius))
        records.append(record_for(save(img, tmp_path / f"{name}.png"), [CHECK]))
    found = {f.path: f.severity for f in judge_all(CHECK, records)}
    assert found == {"mild.png": Severity.WARNING, "strong.png": Severity.ERROR}
