"""The held-out images of a run: ``validation_split`` of each training concept (folder), chosen by seed. One function
that the plan, the export, the report and the trainer all call, so the step counts everyone shows exclude them.

Regularization images are never held out. Each concept keeps at least one training image. The count per concept is
Kohya's (``round(n x split)``); the choice is a seeded shuffle of the concept's file stems, keyed by the concept's
name: it does not depend on the order the folder lists them in, and it is the same on a dataset and on its export
(which keeps names and stems, while repeats, extensions of upright copies and folders may change).

Example::

    held = held_out_items(dataset.items, fraction=0.1, seed=42)   # {"10_sks/img03.png", ...}
    trained = [item for item in dataset.items if item.rel not in held]
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import PurePosixPath

from curator.dataset.discover import Item


def held_out_items(items: Iterable[Item], fraction: float, seed: int) -> frozenset[str]:
    """The ``rel`` of every image held out for validation (empty when ``fraction`` is 0)."""
    if fraction <= 0:
        return frozenset()
    by_concept: dict[str, list[str]] = {}
    for item in items:
        if not item.is_reg:
            by_concept.setdefault(item.concept, []).append(item.rel)
    held: set[str] = set()
    for concept, rels in sorted(by_concept.items()):
        count = min(round(len(rels) * fraction), len(rels) - 1)
        if count <= 0:
            continue
        order = sorted(rels, key=lambda rel: (PurePosixPath(rel).stem, rel))
        random.Random(f"{seed}:{concept}").shuffle(order)
        held.update(order[:count])
    return frozenset(held)
