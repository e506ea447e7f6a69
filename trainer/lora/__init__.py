"""LoRA for SD 1.x / 2.x: adapters trained with peft, saved and read in Kohya's file format (what WebUI, ComfyUI,
Kohya and diffusers' ``load_lora_weights`` load), extracted from a DreamBooth result by SVD, and checked against it.

Modules: ``targets`` (which layers, Kohya's names), ``network`` (peft adapters on our models), ``files`` (the
``.safetensors`` with ``ss_*`` metadata), ``extract`` (SVD of the weight difference), ``check`` (load it the way
diffusers does, compare outputs).
"""
