"""dreamcurate's DreamBooth trainer for Stable Diffusion 1.x / 2.x (diffusers models, accelerate loop).

Importing ``trainer`` is cheap: torch, diffusers and transformers are imported by the modules that need them.
``trainer`` may import ``curator``; it never imports ``tui`` or ``textual``.
"""
