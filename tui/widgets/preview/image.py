"""The image widget: textual-image's best protocol on a real terminal, its half-block renderer otherwise.

textual-image queries the terminal when it is imported, which only works before Textual takes the terminal over, so
``tui.cli`` imports this module before the app starts. ``DREAMCURATE_IMAGES`` overrides the choice: ``auto``
(default), ``halfcell`` (always half blocks; the tests use it so snapshots do not depend on the terminal) or ``off``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image as PILImage
from textual.widget import Widget
from textual.widgets import Static

#: Long side of the thumbnail handed to the widget: enough for any terminal cell grid, cheap to scale.
THUMB_SIZE = 384


def image_mode() -> str:
    """``auto``, ``halfcell`` or ``off`` (from ``DREAMCURATE_IMAGES``; half blocks when stdout is no terminal)."""
    mode = os.environ.get("DREAMCURATE_IMAGES", "auto").lower()
    if mode not in ("auto", "halfcell", "off"):
        mode = "auto"
    if mode == "auto" and not (sys.__stdout__ and sys.__stdout__.isatty()):
        mode = "halfcell"
    return mode


def prepare_terminal() -> None:
    """Let textual-image detect the terminal's graphics support; call before the app starts."""
    if image_mode() != "off":
        import textual_image.widget  # noqa: F401  (queries the terminal on import)


def make_image_widget(id: str | None = None, classes: str = "") -> Widget:
    """A fresh image widget for the current terminal (a placeholder when images are off)."""
    mode = image_mode()
    if mode == "off":
        return Static("", id=id, classes=classes)
    if mode == "halfcell":
        from textual_image.widget import HalfcellImage

        return HalfcellImage(id=id, classes=classes)
    from textual_image.widget import Image

    return Image(id=id, classes=classes)


def load_thumbnail(path: Path) -> PILImage.Image | None:
    """A small RGB copy of the image as training sees it (None when it cannot be decoded). Runs in a worker thread."""
    from curator.images.opening import thumbnail

    return thumbnail(path, THUMB_SIZE)


def set_image(widget: Widget, image: PILImage.Image | None) -> None:
    """Show ``image`` in a widget made by :func:`make_image_widget` (clears it when None)."""
    if isinstance(widget, Static) and not hasattr(widget, "image"):
        widget.update("" if image is None else f"{image.width}x{image.height} (images off)")
        return
    widget.image = image  # type: ignore[attr-defined]
