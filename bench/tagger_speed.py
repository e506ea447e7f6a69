"""Tagger throughput on CPU for a batch of 64 images: what ``dreamcurate caption --tagger`` costs around the model.

    python bench/tagger_speed.py [--tagger DIR] [--images 64] [--repeats 3]

Three timings in the same run, on the same 64 generated 768x512 JPEGs:

- bare: a plain ``onnxruntime`` ``session.run`` loop on a batch already prepared (the floor: inference only);
- predict: :meth:`WD14Tagger.predict` on decoded arrays (padding, resize, BGR, inference, score extraction);
- caption: :func:`curator.captions.suggest.suggest` without a cache (the image loader, all of the above, tag
  selection), what a first ``caption`` run does per image.

With the tiny test tagger (the default) inference costs almost nothing, so the ratios are our overhead outside
inference. ``--tagger DIR`` measures a real WD14 folder when one is on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def make_images(folder: Path, count: int) -> Path:
    """``count`` noisy 768x512 JPEGs in a Kohya concept folder under ``folder``."""
    concept = folder / "1_bench"
    concept.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        base = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((768, 512), Image.Resampling.BICUBIC)
        image.save(concept / f"{i:03d}.jpg", quality=90)
    return folder


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """The fastest of ``repeats`` timed calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tagger", type=Path, help="a WD14 tagger folder (default: the tiny test tagger)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from curator.captions.suggest import TaggerSource, suggest
    from curator.captions.tagger import TagSettings, WD14Tagger
    from curator.dataset.discover import discover
    from curator.images.loader import load_view

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.tagger
        if folder is None:
            from _tagger_fixtures import build_tagger

            folder = build_tagger(Path(tmp) / "tiny-tagger")
        tagger = WD14Tagger.load(folder)
        items = discover(make_images(Path(tmp) / "ds", args.images)).train_items
        arrays = [load_view(item.path).rgb for item in items]
        batch = np.stack([tagger.preprocess(a) for a in arrays]).astype(np.float32)
        session, name = tagger.session, tagger.session.get_inputs()[0].name

        bare = best(lambda: session.run(None, {name: batch}), args.repeats)
        predict = best(lambda: tagger.predict(arrays), args.repeats)
        source = TaggerSource(tagger, TagSettings())
        full = best(lambda: suggest(items, source, None, batch_size=args.images), args.repeats)

    n = args.images
    print(f"tagger {folder.name} on {tagger.provider}, input {tagger.size}px, batch of {n}")
    for label, seconds in (("bare session.run", bare), ("WD14Tagger.predict", predict), ("caption", full)):
        print(
            f"  {label:20s} {n / seconds:9.1f} images/s  ({seconds * 1000:7.1f} ms)  x{seconds / bare:6.1f} bare"
        )
    print(f"  outside inference: {(full - bare) / n * 1000:.1f} ms per image (decode, pad/resize, selection)")


if __name__ == "__main__":
    main()
