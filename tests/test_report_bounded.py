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
