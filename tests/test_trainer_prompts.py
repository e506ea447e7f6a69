"""sample_prompts: plain prompts or Kohya prompt files (.txt/.toml/.json) with their inline options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curator.settings.config import ConfigError, TrainConfig, read_config, write_config
from curator.settings.prompts import SamplePrompt, load_sample_prompts

PROMPT_FILE = """# Kohya sample prompts
sks dog, on a beach --n blurry, lowres --w 512 --h 768 --d 7 --s 28 --l 6.5

   # an indented comment
a well--lit room with sks dog
sks dog --W 500 --x 3 --d seven
"""


def test_txt_file_skips_comments_and_blank_lines_and_reads_options(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(PROMPT_FILE, encoding="utf-8")
    notices: list[str] = []
    prompts = load_sample_prompts([str(path)], notices)
    assert prompts == [
        SamplePrompt("sks dog, on a beach", "blurry, lowres", 512, 768, 7, 28, 6.5),
        SamplePrompt("a well--lit room with sks dog"),  # `--` inside a word is part of the prompt
        SamplePrompt(
            "sks dog", width=496
        ),  # option letters are case-blind; sizes round down to a multiple of 8
    ]
    assert len(notices) == 2
    assert "--x" in notices[0] and "not supported" in notices[0]
    assert "--d" in notices[1] and "seven" in notices[1]


def test_plain_prompts_and_files_mix_in_order(tmp_path: Path) -> None:
    (tmp_path / "more.txt").write_text("from the file\n", encoding="utf-8")
    prompts = load_sample_prompts(["first --n ugly", str(tmp_path / "more.txt"), "last"])
    assert [p.prompt for p in prompts] == ["first", "from the file", "last"]
    assert prompts[0].negative == "ugly" and prompts[2] == SamplePrompt("last")


def test_kohya_toml_and_json_prompt_files(tmp_path: Path) -> None:
    toml_file = tmp_path / "prompts.toml"
    toml_file.write_text(
        '[prompt]\nnegative_prompt = "bad"\nwidth = 640\n'
        '[[prompt.subset]]\nprompt = "one"\n'
        '[[prompt.subset]]\nprompt = "two"\nwidth = 512\nseed = 3\nsample_steps = 30\nscale = 5\n',
        encoding="utf-8",
    )
    json_file = tmp_path / "prompts.json"
    json_file.write_text(json.dumps(["three --h 256", {"prompt": "four", "enum": 1}]), encoding="utf-8")
    notices: list[str] = []
    prompts = load_sample_prompts([str(toml_file), str(json_file)], notices)
    assert prompts == [
        SamplePrompt("one", "bad", width=640),
        SamplePrompt("two", "bad", width=512, seed=3, steps=30, scale=5.0),
        SamplePrompt("three", height=256),
        SamplePrompt("four"),
    ]
    assert notices == ["sample prompt key 'enum' is not supported; ignored"]
    json_file.write_text('{"prompt": "not a list"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a Kohya prompt file"):
        load_sample_prompts([str(json_file)])


def test_config_names_a_prompt_file_relative_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "prompts.txt").write_text("sks dog --s 12\n", encoding="utf-8")
    config_path = folder / "train.toml"
    config_path.write_text('sample_prompts = "prompts.txt"\n', encoding="utf-8")  # Kohya writes a string
    config = read_config(config_path)
    assert config.sample_prompts == [str(folder / "prompts.txt")]
    assert load_sample_prompts(config.sample_prompts) == [SamplePrompt("sks dog", steps=12)]
    # Written back, the resolved path round-trips unchanged; plain prompts are never taken for paths.
    config = config.replace(sample_prompts=[*config.sample_prompts, "sks dog, in snow"])
    write_config(config, tmp_path / "again.toml")
    assert read_config(tmp_path / "again.toml") == config


def test_missing_prompt_file_is_a_clear_config_error(tmp_path: Path) -> None:
    config_path = tmp_path / "train.toml"
    config_path.write_text('sample_prompts = ["gone.txt"]\n', encoding="utf-8")
    config = read_config(config_path)
    with pytest.raises(ConfigError, match=r"prompt file not found: .*gone\.txt"):
        load_sample_prompts(config.sample_prompts)
    model = tmp_path / "base.safetensors"
    model.write_bytes(b"")
    (tmp_path / "data").mkdir()
    ready = TrainConfig(
        pretrained_model_name_or_path=str(model),
        train_data_dir=str(tmp_path / "data"),
        sample_prompts=config.sample_prompts,
    )
    with pytest.raises(ConfigError, match="prompt file not found"):
        ready.validate()  # before training starts
    ready.validate(check_paths=False)  # the file is a path, checked with the other paths


def test_rendering_honours_per_prompt_size_seed_and_negative(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from PIL import Image

    from trainer.models.tiny import build_random_model, tiny_configs
    from trainer.sampling import render_samples

    model = build_random_model(tiny_configs())
    prompts = [
        "sks",  # a plain string still works: the config's size, seed + index
        SamplePrompt("sks", width=128, height=64, seed=5, steps=2, scale=4.0),
        SamplePrompt("sks", width=128, height=64, seed=5, steps=2, scale=4.0, negative="blurry"),
        SamplePrompt("sks", width=128, height=64, seed=5, steps=2, scale=4.0),
    ]
    paths = render_samples(model, prompts, tmp_path, "s", steps=1, size=(64, 64), seed=0, sampler="ddim")
    images = [Image.open(p) for p in paths]
    assert [im.size for im in images] == [(64, 64), (128, 64), (128, 64), (128, 64)]
    pixels = [im.tobytes() for im in images]
    assert pixels[1] == pixels[3]  # its own seed, not seed + index
    assert pixels[1] != pixels[2]  # the negative prompt reaches the pipeline
