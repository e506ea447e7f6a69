"""``dreamcurate caption``: dry run by default, --apply through the tags journal, --undo byte for byte, the audit
of what would be written, offline by construction (tagger and a tiny random BLIP), the report and the TUI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _tagger_fixtures import build_tagger
from click.testing import CliRunner
from PIL import Image

from curator.cli import cli

BLUE, RED, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)
#: the words of the tiny BLIP's vocabulary (everything it can ever say)
BLIP_WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "sitting", "on", "the", "grass"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tagger(tmp_path_factory.mktemp("models") / "wd-tiny")


@pytest.fixture(scope="module")
def blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BLIP with a ten-word vocabulary, saved as a transformers folder."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    out = tmp_path_factory.mktemp("models") / "blip-tiny"
    out.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *BLIP_WORDS]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**small, "vocab_size": len(vocab), "encoder_hidden_size": 16, "max_position_embeddings": 64}
    text |= {"bos_token_id": 5, "pad_token_id": 0, "sep_token_id": 3}
    config = BlipConfig(
        vision_config={**small, "image_size": 32, "patch_size": 16}, text_config=text, projection_dim=16
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(out)
    tokenizer = BertTokenizer(str(out / "vocab.txt"), bos_token="[DEC]")
    processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def florence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised Florence-2 (native transformers classes) with a character-level BART tokenizer,
    made to say at least four tokens (special tokens suppressed), saved as a transformers folder."""
    import torch
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    out = tmp_path_factory.mktemp("models") / "florence-tiny"
    out.mkdir()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<image>": 4}
    for char in "abcdefghijklmnopqrstuvwxyzWĠ?":
        vocab[char] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = BartTokenizer(
        str(out / "vocab.json"), str(out / "merges.txt"), extra_special_tokens={"image_token": "<image>"}
    )
    text = {"vocab_size": len(vocab), "d_model": 16, "encoder_layers": 1, "decoder_layers": 1}
    text |= {"encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32}
    text |= {"decoder_ffn_dim": 32, "max_position_embeddings": 128, "pad_token_id": 1, "bos_token_id": 0}
    text |= {"eos_token_id": 2, "decoder_start_token_id": 2, "forced_eos_token_id": 2}
    vision = {"depths": [1, 1, 1, 1], "embed_dim": [8, 8, 16, 16], "num_heads": [1, 1, 2, 2]}
    vision |= {"num_groups": [1, 1, 2, 2], "window_size": 2, "projection_dim": 16}
    vision |= {"max_position_embeddings": 16, "max_temporal_embeddings": 4}
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(
        Florence2Config(text_config=text, vision_config=vision, image_token_id=4)
    ).eval()
    model.generation_config.min_new_tokens = 4
    model.generation_config.suppress_tokens = [0, 1, 3, 4]
    model.save_pretrained(out)
    images = CLIPImageProcessor(size={"height": 64, "width": 64}, do_center_crop=False)
    images.image_seq_length = 5  # 2x2 patches of a 64 px image and one pooled feature
    Florence2Processor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


def _dataset(tmp_path: Path) -> Path:
    """blue.png without a caption, red.png with a CRLF two-line caption, green.png with a plain one."""
    folder = tmp_path / "train" / "10_sks"
    folder.mkdir(parents=True)
    for name, colour in (("blue", BLUE), ("red", RED), ("green", GREEN)):
        Image.new("RGB", (40, 40), colour).save(folder / f"{name}.png")
    (folder / "red.txt").write_bytes(b"red_theme, smile\r\nsecond line kept\n")
    (folder / "green.txt").write_text("green, grass", encoding="utf-8")
    return tmp_path / "train"


def _digest(root: Path) -> dict[str, str]:
    """Every dataset file (the workspace aside) -> its content hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def _run(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(cli, ["caption", *args])
    return out.exit_code, out.output


def test_dry_run_writes_nothing_apply_writes_and_undo_restores_bytes(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    before = _digest(root)
    code, out = _run(str(root), "--tagger", str(tagger), "--mode", "append", "--trigger", "sks")
    assert code == 0, out
    assert _digest(root) == before
    assert "10_sks/blue.png  new caption file" in out and "+ sks, blue sky, solo, ^_^" in out
    assert (
        "- red_theme, smile" in out and "+ sks, red_theme, smile, red theme" not in out
    )  # same tag not repeated
    assert "Dry run: add --apply" in out
    code, out = _run(str(root), "--tagger", str(tagger), "--mode", "append", "--trigger", "sks", "--apply")
    assert code == 0, out
    folder = root / "10_sks"
    assert (folder / "blue.txt").read_text() == "sks, blue sky, solo, ^_^, hatsune miku, simple background\n"
    red = (folder / "red.txt").read_bytes()
    assert red.startswith(b"sks, red_theme, smile, solo,") and red.endswith(b"\r\nsecond line kept\n")
    code, out = _run(str(root), "--undo")
    assert code == 0, out
    assert _digest(root) == before and not (folder / "blue.txt").exists()


def test_undo_leaves_a_created_caption_edited_since_unless_forced(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    assert _run(str(root), "--tagger", str(tagger), "--apply")[0] == 0
    created = root / "10_sks" / "blue.txt"
    created.write_text("my own words", encoding="utf-8")
    code, out = _run(str(root), "--undo")
    assert code == 1 and "changed since the apply" in out and created.read_text() == "my own words"
    assert _run(str(root), "--undo", "--force")[0] == 0 and not created.exists()


def test_two_images_sharing_a_caption_name_get_one_caption(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    Image.new("RGB", (40, 40), RED).save(root / "10_sks" / "blue.jpg")
    data = json.loads(_run(str(root), "--tagger", str(tagger), "--json", "-")[1])
    assert [Path(c["caption"]).name for c in data["changes"]] == ["blue.txt"]
    assert any("shares its caption file blue.txt" in note for note in data["skipped"])


def test_modes_and_the_audit_of_what_would_be_written(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    long_caption = ", ".join(f"word{i} thing" for i in range(30))
    (root / "10_sks" / "green.txt").write_text(long_caption, encoding="utf-8")
    code, out = _run(str(root), "--tagger", str(tagger), "--json", "-")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "new-only" and not data["applied"]
    assert [c["path"] for c in data["changes"]] == ["10_sks/blue.png"]  # new-only: only the uncaptioned image
    assert data["changes"][0]["created"] and sorted(data["kept"]) == ["10_sks/green.png", "10_sks/red.png"]
    code, out = _run(
        str(root), "--tagger", str(tagger), "--mode", "append", "--trigger", "sks", "--json", "-"
    )
    audit = json.loads(out)["audit"]
    assert audit["truncated"] == ["10_sks/green.png"]
    too_long = next(f for f in audit["findings"] if f["code"] == "caption_too_long")
    assert too_long["path"] == "10_sks/green.png" and "simple background" in too_long["evidence"]["cut_tags"]
    assert audit["keep_tokens"]["sks"]["keep_tokens"] == 1  # the trigger, first everywhere
    assert not [f for f in audit["findings"] if f["code"].startswith("trigger")]
    code, out = _run(str(root), "--tagger", str(tagger), "--mode", "replace")
    assert "- red_theme, smile" in out and "+ red theme, solo" in out
    assert "1 of 3 caption(s) would be truncated at 75 CLIP tokens" not in out  # replace dropped the long one
    code, out = _run(str(root), "--tagger", str(tagger), "--mode", "prepend")
    assert "+ solo, ^_^, hatsune miku, simple background, red_theme, smile" in out
    assert "1 of 3 caption(s) would be truncated at 75" in out


def test_offline_tagger_and_tiny_blip_end_to_end(
    tmp_path: Path, tagger: Path, blip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access in an offline test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    root = _dataset(tmp_path)
    code, out = _run(str(root), "--tagger", str(tagger), "--apply")
    assert code == 0, out
    code, out = _run(str(root), "--captioner", str(blip), "--mode", "replace", "--max-length", "6", "--apply")
    assert code == 0, out
    assert "captioner blip-tiny: 3 image(s) run, 0 from the cache" in out
    for name in ("blue", "red", "green"):
        words = (root / "10_sks" / f"{name}.txt").read_text().splitlines()[0].replace(",", " ").split()
        assert words and set(words) <= set(BLIP_WORDS)
    code, out = _run(
        str(root), "--captioner", str(blip), "--mode", "replace", "--max-length", "6", "--json", "-"
    )
    data = json.loads(out)
    assert (data["ran"], data["cached"]) == (0, 3) and data["model"]["kind"] == "captioner"
    assert _run(str(root), "--undo")[0] == 0
    assert (root / "10_sks" / "red.txt").read_bytes() == b"red_theme, smile\r\nsecond line kept\n"
    assert (root / "10_sks" / "blue.txt").read_text().startswith("blue sky")  # back to the tagger's caption


def test_florence2_runs_its_task(tmp_path: Path, florence: Path) -> None:
    root = _dataset(tmp_path)
    args = ["--captioner", str(florence), "--mode", "replace", "--max-length", "6", "--json", "-"]
    data = json.loads(_run(str(root), *args)[1])
    assert data["model"]["prompt"] == "<CAPTION>"  # Florence-2's task when none is given
    assert len(data["changes"]) == 3 and all(c["new"].strip() for c in data["changes"])
    other = json.loads(_run(str(root), *args, "--task", "<DETAILED_CAPTION>")[1])
    assert other["model"]["prompt"] == "<DETAILED_CAPTION>" and other["ran"] == 3  # another task: not cached


def test_report_names_the_tagger(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    assert "caption_model" not in json.loads(
        CliRunner().invoke(cli, ["scan", str(root), "--json", "-"]).output
    )
    assert _run(str(root), "--tagger", str(tagger))[0] == 0
    data = json.loads(CliRunner().invoke(cli, ["scan", str(root), "--json", "-"]).output)
    assert data["caption_model"]["name"] == "wd-tiny" and data["caption_model"]["threshold"] == 0.35
    html = tmp_path / "r.html"
    assert CliRunner().invoke(cli, ["scan", str(root), "--html", str(html)]).exit_code == 0
    assert "Captions suggested by the tagger <code>wd-tiny</code>" in html.read_text()


def test_usage_errors_and_a_missing_extra_are_one_line(
    tmp_path: Path, tagger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _dataset(tmp_path)
    assert _run(str(root))[0] == 2
    assert _run(str(root), "--tagger", str(tagger), "--captioner", str(tagger))[0] == 2
    code, out = _run(str(root), "--tagger", str(tmp_path))
    assert code == 1 and "not a WD14-style tagger folder" in out and "Traceback" not in out
    (root / "10_sks" / "blue.caption").write_text("blue", encoding="utf-8")
    code, out = _run(str(root), "--tagger", str(tagger))  # .caption files beside: say so, write nothing
    assert code == 2 and "pass --caption-extension .caption" in out
    code, out = _run(str(root), "--tagger", str(tagger), "--caption-extension", ".caption", "--json", "-")
    written = {Path(c["caption"]).name for c in json.loads(out)["changes"]}
    assert code == 0 and written == {"red.caption", "green.caption"}  # blue.caption exists: new-only keeps it
    (root / "10_sks" / "blue.caption").unlink()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out = _run(str(root), "--tagger", str(tagger))
    assert code == 1 and out.strip().splitlines() == [
        "Error: the tagger needs onnxruntime: pip install 'dreamcurate[tagger]' (or onnxruntime-gpu)"
    ]


def test_tagger_runs_without_torch(tmp_path: Path, tagger: Path) -> None:
    root = _dataset(tmp_path)
    probe = (
        "import sys\nfrom curator.cli import main\n"
        f"main(['caption', {str(root)!r}, '--tagger', {str(tagger)!r}])\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "Would write 1 caption(s)" in out


def test_tui_shows_cached_suggestions_and_accepts_them_into_the_editor(tmp_path: Path) -> None:
    asyncio.run(_tui(tmp_path))


async def _tui(tmp_path: Path) -> None:
    from tui_support import make_app, make_dataset

    from curator.captions.store import SuggestionStore, file_key
    from curator.dataset.workspace import Workspace
    from tui.screens.caption_editor import CaptionEditor
    from tui.widgets.browser.item_table import ItemTable
    from tui.widgets.preview.suggestions import SuggestedTags

    root = make_dataset(tmp_path / "ds")
    with SuggestionStore.open(Workspace.for_dataset(root).ensure()) as store:
        image = root / "10_cat" / "a.png"
        store.put_suggestions("wd-tiny", [("10_cat/a.png", file_key(image), "cat, orange fur, sofa")])
    app = make_app(root)
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(50):
            await pilot.pause()
            if app.state.result is not None and app.query_one(ItemTable).row_count:
                break
        widget = app.query_one(SuggestedTags)
        assert widget.display and "suggested by wd-tiny" in str(widget.render())
        for _ in range(4):  # the user reaches it with tab from the item table
            if app.focused is widget:
                break
            await pilot.press("tab")
        assert app.focused is widget
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, CaptionEditor)
        assert app.screen.original == "cat, sitting, sofa, red, orange fur"
        await pilot.press("escape")
        await pilot.pause()
        app.query_one(ItemTable).focus()
        await pilot.press("down")  # b.png has no suggestion: the widget hides
        await pilot.pause()
        assert not widget.display
