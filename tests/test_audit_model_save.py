"""A killed save leaves nothing but names the next run recognises as its own temporaries.

safetensors writes through a temporary of its own (``.tmpXXXXXX``) beside the file name it is given; our single
files are written inside a hidden folder named after the target, so whatever a kill leaves starts with ``.NAME``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def test_library_temporaries_stay_in_a_folder_named_after_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    from trainer import checkpoint
    from trainer.models.io import load_model, save_single_file
    from trainer.models.tiny import write_tiny_model

    model = load_model(write_tiny_model(tmp_path / "tiny.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").write_text("")
    real_save = safetensors.torch.save_file
    seen: list[Path] = []

    def killed_mid_save(state, filename, metadata=None):  # type: ignore[no-untyped-def]
        folder = Path(filename).parent
        seen.append(folder)
        (folder / ".tmpAbC123").write_bytes(b"half")  # what the library leaves when the process dies here
        raise KeyboardInterrupt  # stands in for the kill; cleanup below must not be relied on

    monkeypatch.setattr(safetensors.torch, "save_file", killed_mid_save)
    monkeypatch.setattr("shutil.rmtree", lambda *a, **k: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        save_single_file(model, out / "model-step00000004.safetensors")
    monkeypatch.undo()

    assert seen[0].parent == out and seen[0].name.startswith(".model-step00000004.safetensors.")
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [seen[0].name]
    # the next run of output_name "model" removes the whole leftover
    assert checkpoint.remove_stale_temporaries(out, "model") == [seen[0]]
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl"]

    saved = save_single_file(model, out / "model.safetensors")  # and a normal save leaves only its file
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "model.safetensors"]
    assert set(safetensors.torch.load_file(str(saved))) and real_save is safetensors.torch.save_file
