"""Full-size SD 1.5 through our model I/O, random weights (nothing downloaded): save an fp16 single file, check its key
set is the standard one (1131 keys: UNet 686, VAE 248, text encoder 197), and load it with our loader and with
diffusers' ``from_single_file`` (the peer), comparing time and tensors.

Needs about 8 GB of RAM and 2 GB of disk (in --workdir, default a temporary folder under /tmp). Run once:

    PYTHONPATH=. python bench/modelio_sd15.py
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

STANDARD = {"model.diffusion_model.": 686, "first_stage_model.": 248, "cond_stage_model.transformer.": 197}


def _write_configs(model, folder: Path) -> None:
    """A diffusers folder with configs and tokenizer only: what ``from_single_file(config=...)`` reads."""
    from trainer.models.io import _model_index

    model.unet.save_config(folder / "unet")
    model.vae.save_config(folder / "vae")
    model.text_encoder.config.save_pretrained(folder / "text_encoder")
    model.tokenizer.save_pretrained(folder / "tokenizer")
    model.noise_scheduler.save_config(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps(_model_index(model)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the 2 GB file goes (default: a temp dir)"
    )
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from trainer.models.arch import sd15_architecture
    from trainer.models.io import load_model, save_single_file
    from trainer.models.tiny import build_random_model

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        model = build_random_model(sd15_architecture(), seed=0)
        t_build = time.perf_counter() - t0
        _write_configs(model, work / "config")
        t0 = time.perf_counter()
        path = save_single_file(model, work / "sd15-random-fp16.safetensors", precision="fp16")
        t_save = time.perf_counter() - t0
        del model
        gc.collect()

        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
        counts = Counter(next((p for p in STANDARD if k.startswith(p)), "other") for k in keys)

        t0 = time.perf_counter()
        ours = load_model(path, dtype=torch.float16)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe = StableDiffusionPipeline.from_single_file(
            str(path),
            config=str(work / "config"),
            local_files_only=True,
            torch_dtype=torch.float16,
            safety_checker=None,
        )
        t_peer = time.perf_counter() - t0
        identical = all(
            torch.equal(getattr(ours, n).state_dict()[k], v)
            for n in ("unet", "vae", "text_encoder")
            for k, v in getattr(pipe, n).state_dict().items()
        )

        print(f"{'measure':<44}{'value':>14}")
        print(f"{'keys in file (standard 1131)':<44}{len(keys):>14}")
        for prefix, n in STANDARD.items():
            print(f"{'  ' + prefix + ' (standard ' + str(n) + ')':<44}{counts[prefix]:>14}")
        print(f"{'  other':<44}{counts['other']:>14}")
        print(f"{'file size, GB (fp16)':<44}{path.stat().st_size / 1e9:>14.2f}")
        print(f"{'build random model, s':<44}{t_build:>14.1f}")
        print(f"{'save fp16 single file, s':<44}{t_save:>14.1f}")
        print(f"{'load: ours, s':<44}{t_ours:>14.1f}")
        print(f"{'load: diffusers from_single_file, s':<44}{t_peer:>14.1f}")
        print(f"{'load ratio ours / diffusers':<44}{t_ours / t_peer:>14.2f}")
        print(f"{'tensors identical to diffusers read-back':<44}{str(identical):>14}")


if __name__ == "__main__":
    main()
