"""The check registry: every module in this package that defines a ``CHECKS`` list contributes its checks.

Example::

    from curator.checks import image_checks, dataset_checks, checks_version
    for check in image_checks():
        print(check.name, check.codes)
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from functools import cache

from curator.checks.base import DatasetCheck, ImageCheck


@cache
def _all_checks() -> tuple[ImageCheck | DatasetCheck, ...]:
    found: list[ImageCheck | DatasetCheck] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "CHECKS", ()))
    return tuple(found)


def image_checks() -> list[ImageCheck]:
    """Registered per-image checks, in a stable order."""
    return [c for c in _all_checks() if isinstance(c, ImageCheck)]


def dataset_checks() -> list[DatasetCheck]:
    """Registered dataset-level checks, in a stable order."""
    return [c for c in _all_checks() if isinstance(c, DatasetCheck)]


def all_codes() -> dict[str, str]:
    """Every finding code -> the name of the check that emits it."""
    return {code: check.name for check in _all_checks() for code in check.codes}


def checks_version() -> str:
    """A short digest of every image check's name and version: part of the scan cache key."""
    text = ";".join(f"{c.name}={c.version}" for c in image_checks())
    return hashlib.sha1(text.encode()).hexdigest()[:12]
