"""Run the benchmarks one after another (``make bench``). Each prints its own table with ratios against a peer
measured in the same run.

    python bench/run_all.py [--only NAME ...] [--heavy]

``--heavy`` adds the real-size SD 1.5 save/load check (about 8 GB of RAM) and the 20,000-image scrape (about
10 minutes on 2 cores, 3 GB in /tmp). ``kohya_parity`` needs a local
sd-scripts checkout and runs only when ``KOHYA_SD_SCRIPTS`` names one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: name -> extra arguments; run in this order
DEFAULT = {
    "scan_speed": [],
    "detectors": [],
    "dup_search": [],
    "blur_variants": ["--no-peers"],
    "keeper_originals": [],
    "fuzz_scan": ["--count", "10000"],
    "train_speed": [],
    "tui_open": [],
    "tagger_speed": [],
}
HEAVY = {"modelio_sd15": [], "scrape_scale": []}


def run(name: str, args: list[str]) -> int:
    """Run one benchmark script with this interpreter; returns its exit code."""
    script = BENCH / f"{name}.py"
    if not script.exists():
        print(f"== {name}: not present, skipped")
        return 0
    print(f"\n== {name}", flush=True)
    start = time.perf_counter()
    code = subprocess.call([sys.executable, str(script), *args], cwd=BENCH.parent)
    print(f"== {name}: exit {code} in {time.perf_counter() - start:.1f} s", flush=True)
    return code


def main() -> int:
    """Run the selected benchmarks; non-zero when any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (default: all light ones)")
    parser.add_argument("--heavy", action="store_true", help="also run the real-size SD 1.5 model check")
    ns = parser.parse_args()
    plan = dict(DEFAULT)
    if ns.heavy:
        plan.update(HEAVY)
    if os.environ.get("KOHYA_SD_SCRIPTS"):
        plan["kohya_parity"] = ["--sd-scripts", os.environ["KOHYA_SD_SCRIPTS"]]
    if ns.only:
        plan = {name: plan.get(name, []) for name in ns.only}
    failures = [name for name, args in plan.items() if run(name, args) != 0]
    if failures:
        print("failed:", ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
