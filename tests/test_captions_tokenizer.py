"""The offline CLIP tokenizer: exact ids, parity with transformers and open_clip, atomic cache folder, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from curator.captions import tokenizer as tk

TRICKY = [
    "a photo of a cat",
    "masterpiece, 1girl, (blue_eyes:1.2), \\(artist\\), looking_at_viewer",
    "Ünïcödé café naïve, 日本語 テキスト, Straße",
    "it's   a\ttest\nsecond line, don't, we'll, I'd",
    "12345 678.9% -- ,,, ;; !!",
    "emoji 🎨🔥 mixed, sks person, <lora:foo:0.8>",
    "UPPER Case MiXeD, x" + "y" * 120,
    "",
]


def test_known_ids() -> None:
    assert tk.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tk.count_tokens("a photo of a cat") == 5
    assert tk.count_tokens("") == 0


def test_vocab_shape() -> None:
    merges = tk.read_merges(tk.find_bpe_vocab())
    vocab = tk.build_vocab(merges)
    assert len(merges) == 48894
    assert len(vocab) == tk.VOCAB_SIZE
    assert vocab["<|startoftext|>"] == tk.BOS_ID and vocab["<|endoftext|>"] == tk.EOS_ID
    assert vocab["!"] == 0 and vocab["cat</w>"] == 2368


def test_folder_is_built_once_atomically(tmp_path: Path) -> None:
    folder = tk.clip_tokenizer_dir(tmp_path)
    for name in (
        "vocab.json",
        "merges.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ):
        assert (folder / name).is_file(), name
    stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    assert tk.clip_tokenizer_dir(tmp_path) == folder
    assert (folder / "tokenizer.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temp folder left behind
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "CLIPTokenizer"


def test_cache_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DREAMCURATE_CACHE", str(tmp_path / "c"))
    assert tk.cache_root() == tmp_path / "c"
    monkeypatch.delenv("DREAMCURATE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert tk.cache_root() == tmp_path / "x" / "dreamcurate"


def test_missing_vocab_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DREAMCURATE_CLIP_VOCAB", str(tmp_path / "nope.gz"))
    with pytest.raises(tk.TokenizerUnavailable, match="DREAMCURATE_CLIP_VOCAB"):
        tk.find_bpe_vocab()


def test_parity_with_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    folder = tk.clip_tokenizer_dir()
    full = transformers.CLIPTokenizer.from_pretrained(str(folder))
    # A folder with only vocab.json + merges.txt: transformers builds its own pipeline from them.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(folder / name, bare / name)
    from_vocab = transformers.CLIPTokenizer.from_pretrained(str(bare))
    for text in TRICKY:
        ours = tk.encode(text)
        assert ours == full(text).input_ids, text
        assert ours == from_vocab(text).input_ids, text


def test_parity_with_open_clip() -> None:
    """open_clip's reference tokenizer (OpenAI's code); our tricky captions avoid the HTML / ftfy fixes it adds."""
    oc = pytest.importorskip("open_clip.tokenizer")
    simple = oc.SimpleTokenizer()
    for text in TRICKY:
        ref = [tk.BOS_ID, *simple.encode(text), tk.EOS_ID]
        assert tk.encode(text) == ref, text


def test_tokenizer_does_not_import_torch() -> None:
    code = (
        "import sys, json\nfrom curator.captions.tokenizer import encode\nencode('a cat')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch','transformers','open_clip'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_unwritable_cache_still_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DREAMCURATE_CACHE", str(blocker / "sub"))
    tk._backend.cache_clear()
    try:
        assert tk.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    finally:
        tk._backend.cache_clear()
