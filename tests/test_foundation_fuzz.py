"""Seeded fuzz: 1,000 mutated PNG / JPEG / WebP / GIF files scan without a crash or a hang (bench/fuzz_scan.py
does 10,000)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from curator.scan.results import ScanSettings
from curator.scan.run import scan

_SPEC = importlib.util.spec_from_file_location(
    "fuzz_scan", Path(__file__).resolve().parents[1] / "bench" / "fuzz_scan.py"
)
assert _SPEC and _SPEC.loader
fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fuzz)


LOAD_CODES = ("corrupt", "decompression_bomb", "decode_timeout", "unreadable")


def test_fuzzed_files_never_abort_the_scan(tmp_path: Path) -> None:
    root = fuzz.make_fuzz_corpus(tmp_path / "data", 1000, seed=7)
    settings = ScanSettings(
        workers=2, progress=False, params={"loader": {"max_pixels": 4_000_000, "timeout_s": 10}}
    )
    result = scan(root, settings)
    assert len(result.records) == 1000 and result.analysed == 1000
    decoded = [r for r in result.records if r.decoded]
    failed = [r for r in result.records if not r.decoded]
    assert decoded and failed  # the corpus really has both
    for record in failed:
        load_errors = [f for f in record.findings if f.code in LOAD_CODES]
        assert len(load_errors) == 1 and load_errors[0].severity.value == "error"
    for record in decoded:
        assert record.width > 0 and record.height > 0 and "sha256" in record.metrics
    rescan = scan(root, settings)
    assert (rescan.analysed, rescan.cached) == (0, 1000)
    assert [r.decoded for r in rescan.records] == [r.decoded for r in result.records]
