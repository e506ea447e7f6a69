"""The one exception model I/O raises for a file it will not load or write. It is light (no torch) so the CLI can
catch it and print one line.

Example::

    try:
        load_model(path)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
"""

from __future__ import annotations


class ModelError(Exception):
    """A model file we refuse or cannot read; ``str(exc)`` is one line a person understands."""
