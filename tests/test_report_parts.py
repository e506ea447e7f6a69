"""Pieces of the report and export: the TOML writer, the SVG charts, thumbnails."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import tomllib
from PIL import Image

from curator.export import tomlwrite
from curator.report.charts import bar_chart, histogram
from curator.report.thumbs import thumbnail_uri


def test_toml_round_trip_with_awkward_strings() -> None:
    data = {
        "name": 'a "quoted" \\ path\twith\ncontrol\x7f and \x01 and 日本',
        "n": 3,
        "x": 0.25,
        "flag": False,
        "tags": ["a", "b,c"],
        "skipped": None,
        "general": {"shuffle_caption": True, "odd key": 1},
        "datasets": [{"resolution": 512, "subsets": [{"image_dir": "C:\\data\\10_cat", "num_repeats": 10}]}],
    }
    parsed = tomllib.loads(tomlwrite.dumps(data, comments={"n": "a help line"}, header="two\nlines"))
    expected = {k: v for k, v in data.items() if v is not None}
    assert parsed == expected
    with pytest.raises(ValueError):
        tomlwrite.dumps({"x": float("nan")})


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_bar_chart_escapes_labels_and_scales() -> None:
    svg = bar_chart([("<script>x</script>", 10.0), ("b", 5.0)], total=20)
    parser = _Tags()
    parser.feed(svg)
    assert "script" not in parser.tags and parser.tags.count("rect") == 2
    assert "50%" in svg and "25%" in svg
    assert "Nothing to show" in bar_chart([])


def test_histogram_handles_odd_values_and_draws_the_threshold() -> None:
    svg = histogram([1.0, 2.0, float("nan"), float("inf"), 2.0], threshold=10.0, label="<m>")
    assert "threshold 10" in svg and "&lt;m&gt;" in svg and "<m>" not in svg
    assert "No values" in histogram([float("nan")])
    assert "<rect" in histogram([5.0, 5.0, 5.0])  # a constant metric still draws


def test_thumbnail_is_small_and_handles_bad_files(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGBA", (1200, 600), (200, 10, 10, 128)).save(big)
    uri = thumbnail_uri(big)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,") and len(uri) < 20_000
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    assert thumbnail_uri(bad) is None and thumbnail_uri(tmp_path / "missing.png") is None
