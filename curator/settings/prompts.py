"""Sample prompts: plain prompt strings or Kohya sd-scripts prompt files, read into :class:`SamplePrompt` values.

``TrainConfig.sample_prompts`` holds entries; an entry ending in ``.txt``, ``.toml`` or ``.json`` names a prompt file
in Kohya's formats, any other entry is a prompt. Prompts (from the config or a ``.txt`` line) may carry Kohya's inline
options: ``--n`` negative prompt, ``--w`` width, ``--h`` height, ``--d`` seed, ``--s`` steps, ``--l`` guidance scale.

Example::

    notices: list[str] = []
    prompts = load_sample_prompts(["sks dog --n blurry --w 512 --h 768", "prompts.txt"], notices)
    prompts[0].negative  # "blurry"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from curator.settings.config import ConfigError

PROMPT_FILE_SUFFIXES = (".txt", ".toml", ".json")

# Kohya's option letter -> (SamplePrompt field, type); Kohya's TOML/JSON keys -> SamplePrompt field.
_OPTIONS: dict[str, tuple[str, type]] = {
    "n": ("negative", str),
    "w": ("width", int),
    "h": ("height", int),
    "d": ("seed", int),
    "s": ("steps", int),
    "l": ("scale", float),
}
_KEYS = {
    "prompt": "prompt",
    "negative_prompt": "negative",
    "width": "width",
    "height": "height",
    "seed": "seed",
    "sample_steps": "steps",
    "scale": "scale",
}


@dataclass(frozen=True)
class SamplePrompt:
    """One sample to render; ``None`` means the config's value (size: resolution, seed: seed + index)."""

    prompt: str
    negative: str = ""
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    scale: float | None = None


def is_prompt_file(entry: str) -> bool:
    """Whether a ``sample_prompts`` entry names a prompt file (by its suffix) rather than being a prompt."""
    return "\n" not in entry and entry.strip().lower().endswith(PROMPT_FILE_SUFFIXES)


def load_sample_prompts(entries: list[str], notices: list[str] | None = None) -> list[SamplePrompt]:
    """Read ``sample_prompts`` entries into samples, in order; prompt files are read (Kohya's formats).

    A ``.txt`` file holds one prompt per line; blank lines and lines starting with ``#`` are skipped. Options split
    off at `` --`` (a space before the dashes, as in Kohya), so ``a well--lit room`` stays one prompt. A ``.toml``
    file has a ``[prompt]`` table of defaults and ``[[prompt.subset]]`` entries; a ``.json`` file is a list of
    prompt strings or objects (keys ``prompt``, ``negative_prompt``, ``width``, ``height``, ``seed``,
    ``sample_steps``, ``scale``). Unknown or malformed options are ignored and described in ``notices``; a missing
    or unreadable file raises :class:`ConfigError`.
    """
    notes: list[str] = notices if notices is not None else []
    samples: list[SamplePrompt] = []
    for entry in entries:
        if not is_prompt_file(entry):
            samples.append(_parse_line(entry, notes))
            continue
        found = _read_prompt_file(Path(entry.strip()), notes)
        if not found:
            notes.append(f"sample prompt file {entry} has no prompts")
        samples.extend(found)
    return samples


def _parse_line(line: str, notices: list[str]) -> SamplePrompt:
    prompt, *options = line.strip().split(" --")
    values: dict[str, Any] = {}
    for option in options:
        key, _, value = option.strip().partition(" ")
        spec = _OPTIONS.get(key.lower())
        if spec is None:
            if key:
                notices.append(f"sample prompt option --{key} is not supported; ignored ({prompt.strip()!r})")
            continue
        values.update(_option_value(spec[0], spec[1], value.strip(), f"--{key}", notices))
    return _sample(prompt.strip(), values)


def _option_value(name: str, kind: type, value: Any, label: str, notices: list[str]) -> dict[str, Any]:
    try:
        return {name: value if kind is str else kind(value)}
    except (TypeError, ValueError):
        notices.append(f"sample prompt option {label} {value!r} is not {kind.__name__}; ignored")
        return {}


def _sample(prompt: str, values: dict[str, Any]) -> SamplePrompt:
    for side in (
        "width",
        "height",
    ):  # the VAE works in multiples of 8 pixels (Kohya rounds down the same way)
        if values.get(side) is not None:
            values[side] = max(64, values[side] - values[side] % 8)
    if values.get("steps") is not None:
        values["steps"] = max(1, min(1000, values["steps"]))
    return SamplePrompt(prompt=prompt, **values)


def _read_prompt_file(path: Path, notices: list[str]) -> list[SamplePrompt]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"sample_prompts: prompt file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sample_prompts: cannot read prompt file {path}: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = (line.strip() for line in text.splitlines())
        return [_parse_line(line, notices) for line in lines if line and not line.startswith("#")]
    try:
        if suffix == ".toml":
            table = tomllib.loads(text)["prompt"]
            defaults = {k: v for k, v in table.items() if k != "subset"}
            items: Any = [{**defaults, **subset} for subset in table.get("subset", [])]
        else:
            items = json.loads(text)
        if not isinstance(items, list):
            raise TypeError("not a list of prompts")
        return [_from_item(item, notices) for item in items]
    except (KeyError, TypeError, AttributeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"sample_prompts: {path} is not a Kohya prompt file: {exc}") from exc


def _from_item(item: Any, notices: list[str]) -> SamplePrompt:
    if isinstance(item, str):
        return _parse_line(item, notices)
    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
        raise TypeError(f"entry without a prompt string: {item!r}")
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key == "prompt":
            continue
        if key not in _KEYS:
            notices.append(f"sample prompt key {key!r} is not supported; ignored")
            continue
        name = _KEYS[key]
        kind = next(kind for field, kind in _OPTIONS.values() if field == name)
        values.update(_option_value(name, kind, value, key, notices))
    return _sample(item["prompt"].strip(), values)
