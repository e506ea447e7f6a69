"""Parity of dreamcurate's training arithmetic with Kohya sd-scripts, measured against a local sd-scripts checkout.

It loads three pieces of the user's sd-scripts source (``BucketManager``, ``make_bucket_resolutions`` and
``BaseDataset.process_caption``) with ``ast`` (no torch, nothing copied into this project), runs them and ours on
the same inputs, and prints how many results differ.

    python bench/kohya_parity.py --sd-scripts ~/src/sd-scripts      # or KOHYA_SD_SCRIPTS=...
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import random
import re
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.captions.parse import CaptionOptions, process_caption  # noqa: E402
from curator.plan.buckets import BucketSettings, make_buckets, select_bucket  # noqa: E402


def _source_of(path: Path, name: str, owner: str | None = None) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body
    if owner:
        nodes = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner).body
    node = next(n for n in nodes if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name)
    return ast.unparse(node)


def _kohya(root: Path) -> dict:
    ns: dict = {"math": math, "np": np, "random": random, "re": re, "Tuple": tuple, "Optional": object}
    exec(_source_of(root / "library" / "model_util.py", "make_bucket_resolutions"), ns)  # noqa: S102
    ns["model_util"] = types.SimpleNamespace(make_bucket_resolutions=ns["make_bucket_resolutions"])
    ns["BaseSubset"] = object
    exec(_source_of(root / "library" / "train_util.py", "BucketManager"), ns)  # noqa: S102
    exec(_source_of(root / "library" / "train_util.py", "process_caption", owner="BaseDataset"), ns)  # noqa: S102
    return ns


def bucket_parity(ns: dict, rng: random.Random) -> tuple[int, int]:
    """(cases, mismatches) of bucket choice and resized size over random and exact-bucket sizes."""
    cases = bad = 0
    for reso in (512, 768):
        for max_reso in (1024, 1280):
            for no_upscale in (False, True):
                manager = ns["BucketManager"](no_upscale, (reso, reso), 256, max_reso, 64)
                if not no_upscale:
                    manager.make_buckets()
                ours = BucketSettings(resolution=reso, max_bucket_reso=max_reso, bucket_no_upscale=no_upscale)
                sizes = [(rng.randint(64, 4000), rng.randint(64, 4000)) for _ in range(2000)]
                sizes += make_buckets(BucketSettings(resolution=reso, max_bucket_reso=max_reso))
                for w, h in sizes:
                    reso_k, resized_k, _ = manager.select_bucket(w, h)
                    choice = select_bucket(w, h, ours)
                    cases += 1
                    bad += (tuple(reso_k), tuple(resized_k)) != (choice.bucket, choice.resized)
    return cases, bad


def caption_parity(ns: dict, rng: random.Random) -> tuple[int, int]:
    """(cases, mismatches) of shuffle_caption + keep_tokens + ||| + tag dropout, same random seed."""
    words = ["sks", "1girl", "smile", "blue eyes", "outdoors", "hat", "(red:1.2)", ""]
    cases = bad = 0
    for _ in range(3000):
        tags = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.3:
            tags.insert(rng.randint(0, len(tags)), "|||")
        caption = ", ".join(tags).replace(", |||,", " |||")
        keep = rng.randint(0, 4)
        dropout = rng.choice([0.0, 0.0, 0.3])
        subset = types.SimpleNamespace(
            caption_prefix=None,
            caption_suffix=None,
            caption_dropout_rate=0.0,
            caption_dropout_every_n_epochs=0,
            enable_wildcard=False,
            shuffle_caption=True,
            token_warmup_step=0,
            token_warmup_min=1,
            caption_tag_dropout_rate=dropout,
            keep_tokens_separator="|||",
            caption_separator=",",
            secondary_separator=None,
            keep_tokens=keep,
        )
        dataset = types.SimpleNamespace(current_step=0, current_epoch=1, max_train_steps=100, replacements={})
        seed = rng.randint(0, 10**6)
        random.seed(seed)
        theirs = ns["process_caption"](dataset, subset, caption)
        options = CaptionOptions(keep_tokens=keep, caption_tag_dropout_rate=dropout)
        ours = process_caption(caption, options, random.Random(seed))
        cases += 1
        bad += theirs != ours
    return cases, bad


def main() -> int:
    """Print the parity table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sd-scripts", default=os.environ.get("KOHYA_SD_SCRIPTS"), help="sd-scripts checkout"
    )
    args = parser.parse_args()
    if not args.sd_scripts or not (Path(args.sd_scripts) / "library" / "train_util.py").is_file():
        print("point --sd-scripts (or KOHYA_SD_SCRIPTS) at a kohya-ss/sd-scripts checkout", file=sys.stderr)
        return 2
    ns = _kohya(Path(args.sd_scripts))
    rng = random.Random(0)
    print(f"{'check':<28}{'cases':>8}{'mismatches':>12}{'seconds':>9}")
    for name, check in (
        ("bucket choice + resize", bucket_parity),
        ("caption shuffle/keep/drop", caption_parity),
    ):
        started = time.perf_counter()
        cases, bad = check(ns, rng)
        print(f"{name:<28}{cases:>8}{bad:>12}{time.perf_counter() - started:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
