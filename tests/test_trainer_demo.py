"""``dreamcurate demo`` end to end: sample dataset, scan, report, export, tiny model trained, saved, sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli import cli
from curator.settings.config import read_config
from trainer.events import read_events


@pytest.fixture
def one_thread() -> object:
    # two test workers share two cores: a second torch thread per worker only adds spin-waiting
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_demo_trains_the_tiny_model_and_says_where_everything_is(tmp_path: Path, one_thread: object) -> None:
    from safetensors import safe_open

    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output

    curated = sorted(p.name for p in (out / "curated" / "img" / "10_mystyle").glob("*.png"))
    originals = sorted(p.name for p in (out / "train" / "10_mystyle").glob("*.png"))
    assert 0 < len(curated) < len(originals)  # the images with an error finding stayed behind
    assert "<html" in (out / "curated" / "report.html").read_text(encoding="utf-8").lower()
    config = read_config(out / "curated" / "train.toml")
    config.validate()
    output_dir = Path(config.output_dir)
    model = output_dir / "demo.safetensors"
    with safe_open(str(model), framework="pt") as handle:
        assert handle.metadata()["dreamcurate.step"] == str(config.max_train_steps)
    events = read_events(output_dir / "events.jsonl")
    assert events[-1]["event"] == "end" and events[-1]["step"] == config.max_train_steps
    assert (output_dir / "samples" / "demo_00.png").stat().st_size > 0
    for path in (model, out / "curated" / "report.html", out / "curated" / "train.toml"):
        assert str(path) in "".join(result.output.split())
