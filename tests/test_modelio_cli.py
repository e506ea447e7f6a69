"""``dreamcurate model``: tiny, info, convert; one-line errors; light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli import cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["model", *args])
    return result.exit_code, result.output


def test_model_cli_module_does_not_import_torch() -> None:
    code = "import sys, trainer.commands.model\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('torch', 'diffusers', 'transformers', 'safetensors')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tiny_info_convert(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    tiny = tmp_path / "tiny.safetensors"
    code, out = _run("tiny", str(tiny))
    assert code == 0, out
    assert tiny.is_file()

    code, out = _run("info", str(tiny), "--json")
    assert code == 0, out
    info = json.loads(out)
    assert info["family"] == "sd1" and info["precision"] == "float" and info["ema"] is False
    assert info["parameters"]["unet"] > 1_000_000 and info["trains"]["frozen"]["vae"] > 0

    code, out = _run("info", str(tiny))
    assert code == 0 and "Stable Diffusion 1.x" in out and "VAE frozen" in out

    half = tmp_path / "half.safetensors"
    code, out = _run("convert", str(tiny), str(half), "--precision", "fp16")
    assert code == 0, out
    assert json.loads(_run("info", str(half), "--json")[1])["precision"] == "fp16"

    folder = tmp_path / "diffusers"
    code, out = _run("convert", str(tiny), str(folder), "--precision", "float", "--to", "diffusers")
    assert code == 0, out
    assert (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()
    assert json.loads(_run("info", str(folder), "--json")[1])["parameters"] == info["parameters"]


def test_refusals_are_one_line_errors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(lora))
    for args in (["info", str(lora)], ["convert", str(lora), str(tmp_path / "o.safetensors")]):
        code, out = _run(*args)
        assert code == 1
        assert out.startswith("Error: ") and "LoRA" in out and out.count("\n") == 1
    code, out = _run("tiny", str(tmp_path / "tiny.bin"))
    assert code == 2 and ".safetensors" in out
