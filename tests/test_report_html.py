"""The HTML report: escaped, self-contained, complete; rendered by headless Chromium when it is installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from curator.findings import Finding, Severity
from curator.report.html import render_html, write_html
from curator.review.curation import build_curation, plan_curation
from tests._report_fixtures import HOSTILE, build_result, showcase_result, tree_digest

#: every attribute the report may write; anything else would be an injected one
ALLOWED_ATTRS = {
    "class", "id", "href", "src", "alt", "title", "loading", "lang", "charset", "name", "content", "http-equiv",
    "style", "viewbox", "width", "height", "role", "x", "y", "x1", "y1", "x2", "y2", "rx", "fill", "text-anchor",
}  # fmt: skip


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def _plan() -> dict[str, object]:
    return {
        "total_steps": 2800,
        "stop_text_encoder_training": 1120,
        "buckets": [{"width": 512, "height": 512, "count": 12}],
        "size_advice": [{"concept": HOSTILE, "message": "fine"}],
    }


def test_hostile_names_and_captions_are_escaped(tmp_path: Path) -> None:
    result = showcase_result(tmp_path)
    html = render_html(build_curation(result), _plan())
    parsed = _parse(html)
    assert "script" not in parsed.tags
    assert parsed.tags.count("img") == len([v for t, n, v in parsed.attrs if t == "img" and n == "src"])
    bad = [(t, n) for t, n, _ in parsed.attrs if n not in ALLOWED_ATTRS]
    assert bad == [], bad
    assert not [n for _, n, _ in parsed.attrs if n.startswith("on")]
    # the hostile strings are shown to the reader as text
    text = "".join(parsed.text)
    assert HOSTILE in text and 'onerror="alert(1)"' in text and "q\"uote's & <b>.png" in text


def test_no_external_reference(tmp_path: Path) -> None:
    html = render_html(build_curation(showcase_result(tmp_path)), _plan())
    parsed = _parse(html)
    for tag, name, value in parsed.attrs:
        if name == "src":
            assert (value or "").startswith("data:image/"), (tag, value)
        if name == "href":
            assert (value or "").startswith("#"), (tag, value)
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered and "url(" not in lowered
    assert "<link" not in lowered and "@import" not in lowered
    assert "default-src 'none'" in html  # the CSP forbids scripts and remote loads even if something slipped


def test_sections_thumbnails_and_clusters(tmp_path: Path) -> None:
    result = showcase_result(tmp_path)
    html = render_html(build_curation(result), _plan())
    for anchor in ("summary", "plan", "findings", "duplicates", "tags", "buckets", "metrics", "images"):
        assert f'id="{anchor}"' in html
    assert html.count('<div class="item keeper">') == 1  # one cluster, its keeper marked
    assert "data:image/jpeg;base64," in html
    assert "<svg" in html and "threshold 5" in html  # the blurry check's threshold drawn on its histogram
    assert "2800" in html  # plan headline
    # every card says what export does with it (the curation's verdict)
    assert 'class="badge kept"' in html and "dropped: duplicate" in html


def test_without_plan_and_with_undecodable_items(tmp_path: Path) -> None:
    result = build_result(tmp_path / "d", {"cat": (2, ["a.png", "b.png"])})
    bad = result.records[1]
    bad.decoded = False
    bad.findings.append(Finding("corrupt", Severity.ERROR, "Not an image", {}, bad.item.rel))
    bad.item.path.write_bytes(b"not an image")
    html = render_html(build_curation(result), plan=None)
    assert 'id="plan"' not in html and "no preview" in html and "corrupt" in html


def test_plan_section_is_the_planners_of_the_same_curation(tmp_path: Path) -> None:
    curation = build_curation(showcase_result(tmp_path))
    assert 'id="plan"' not in render_html(curation)  # no plan given: no plan section (none is made up)
    html = render_html(curation, plan_curation(curation))
    assert 'id="plan"' in html and "optimizer steps" in html


def test_write_html_is_atomic_and_leaves_the_dataset_alone(tmp_path: Path) -> None:
    result = showcase_result(tmp_path)
    before = tree_digest(tmp_path / "data")
    out = write_html(build_curation(result), tmp_path / "reports" / "r.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]
    assert tree_digest(tmp_path / "data") == before


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    curation = build_curation(showcase_result(tmp_path))
    page = write_html(curation, tmp_path / "report.html", plan=_plan())
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        f"--screenshot={shot}", "--window-size=1280,1800", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists()
    with Image.open(shot) as image:
        assert image.size == (1280, 1800)
        colours = image.convert("RGB").resize((64, 90)).getcolors(64 * 90) or []
    assert len(colours) > 50  # a rendered page with content, not a blank or error screen
