"""The HTML report stays bounded: at most THUMB_BUDGET previews, flagged images first; every image still listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from _report_fixtures import build_result

from curator.findings import Finding, Severity
from curator.report import html
from curator.review.curation import build_curation


def test_previews_are_bounded_and_flagged_images_come_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [f"{i:03d}.png" for i in range(30)]
    flagged = {
        f"1_cat/{name}": [Finding("blurry", Severity.WARNING, "soft", {})] for name in files[20:]
    }  # the last ten, so a first-N rule would miss them
    result = build_result(tmp_path / "ds", {"cat": (1, files)}, findings=flagged)
    monkeypatch.setattr(html, "THUMB_BUDGET", 12)
    curation = build_curation(result)
    text = html.render_html(curation)
    assert text.count('src="data:image/jpeg;base64,') <= 2 * 12  # a preview may appear in two sections
    report = html._Report(curation, None)
    report.prefetch()
    made = {rel for rel, uri in report._thumbs.items() if uri}
    assert len(report._thumbs) == 12 and set(flagged) <= made
    assert "over 12 in this report" in text


def test_a_large_duplicate_cluster_shows_a_bounded_number_of_cards(tmp_path: Path) -> None:
    """A scrape's cluster of 30 copies: the keeper and the next members as cards, every other member named."""
    from _report_fixtures import dup

    files = [f"{i:03d}.png" for i in range(30)]
    keeper = "1_cat/000.png"
    found = {f"1_cat/{name}": [dup(keeper)] for name in files[1:]}
    curation = build_curation(build_result(tmp_path / "ds", {"cat": (1, files)}, findings=found))
    section = html._Report(curation, None).duplicates_section()
    assert section.count('class="item') == html.MAX_CLUSTER_CARDS
    assert f"{30 - html.MAX_CLUSTER_CARDS} more in this cluster of 30" in section
    shown_as_cards = section.split("more in this cluster")[0]
    for name in files:  # every member is in the section, as a card or by name
        assert name in section
    assert "029.png" not in shown_as_cards
