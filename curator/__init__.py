"""dreamcurate's headless core: everything about a dataset.

``curator`` never imports torch, textual, ``trainer`` or ``tui`` at import time; the optional CLIP feature imports
torch lazily inside the function that needs it.
"""

__version__ = "0.1.0"
