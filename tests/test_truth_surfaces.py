"""One truth across surfaces: on one generated dataset, ``plan --json``, the reports (JSON and HTML), the TUI
backend's plan, export's ``plan.json`` / ``train.toml`` / ``dataset.toml`` (read the way Kohya reads them) and what the
trainer actually ran all give the same kept images, bucket counts, steps per epoch, total steps and TE stop step.

The dataset has everything that used to make the surfaces disagree: two concepts with different repeats, a
regularization folder, three buckets with odd counts at batch 2, two review drops, a user-chosen keeper in a duplicate
cluster, ``--target-size`` that only cuts one concept, ``.caption`` captions, an EXIF-rotated JPEG and a GIF (which
Kohya's listing skips).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib
from click.testing import CliRunner
from PIL import Image

from curator.cli import cli
from curator.dataset.workspace import Workspace
from curator.plan.buckets import BucketSettings, select_bucket
from curator.review.decisions import DecisionStore, cluster_key
from curator.settings.config import TrainConfig

SQUARE, WIDE, TALL = (192, 192), (300, 100), (150, 300)
RESOLUTION = ["--resolution", "128", "--bucket-min", "64", "--bucket-max", "256"]
KEEPER_COPY = "3_mystyle/s00_copy.png"  # the user keeps the re-encoded copy over the original
DROPS = ("3_mystyle/w01.png", "5_otherchar/s02.png")


def _picture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A photo-like picture: smooth colour fields, hard-edged shapes, a little grain (sharp, not a screenshot)."""
    width, height = size
    base = Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize(
        (width, height), Image.BICUBIC
    )
    pixels = np.asarray(base, dtype=np.int16).copy()
    for _ in range(6):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        pixels[y : y + int(rng.integers(10, 60)), x : x + int(rng.integers(10, 60))] = rng.integers(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write(folder: Path, name: str, image: Image.Image, caption: str, **save: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / name, **save)
    (folder / name).with_suffix(".caption").write_text(caption + "\n", encoding="utf-8")


def make_dataset(root: Path) -> tuple[Path, Path]:
    """The dataset (``3_mystyle``, ``5_otherchar``) and its regularization folder (``1_person``)."""
    rng = np.random.default_rng(7)
    style, other, reg = (
        root / "train" / "3_mystyle",
        root / "train" / "5_otherchar",
        root / "reg" / "1_person",
    )
    layout = {style: ("s", [SQUARE] * 4), other: ("s", [SQUARE] * 3)}
    for folder, (prefix, sizes) in layout.items():
        for n, size in enumerate(sizes):
            _write(folder, f"{prefix}{n:02d}.png", _picture(rng, size), f"{folder.name[2:]}, picture {n}")
    for folder, count in ((style, 3), (other, 1)):
        for n in range(count):
            _write(folder, f"w{n:02d}.png", _picture(rng, WIDE), f"{folder.name[2:]}, wide {n}")
    _write(style, "t00.png", _picture(rng, TALL), "mystyle, tall")
    original = Image.open(style / "s00.png").convert("RGB")
    _write(style, "s00_copy.png", original.resize((184, 184), Image.LANCZOS), "mystyle, picture 0, copy")
    # a phone photo stored sideways (EXIF orientation 6: shown rotated 90 degrees), and a GIF Kohya skips
    sideways = _picture(rng, (150, 300)).rotate(90, expand=True)  # stored 300x150, shown 150x300
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    (other / "phone.jpg").write_bytes(buffer.getvalue())
    (other / "phone.caption").write_text("otherchar, phone photo\n", encoding="utf-8")
    _write(other, "anim.gif", _picture(rng, TALL).convert("P"), "otherchar, gif")
    for n, size in enumerate((WIDE, TALL, SQUARE)):
        _write(reg, f"r{n:02d}.png", _picture(rng, size), "person")
    return root / "train", root / "reg"


def _review(train: Path) -> None:
    """Two drops and a keeper chosen by the user, as the TUI records them."""
    store = DecisionStore(Workspace.for_dataset(train))
    members = sorted(["3_mystyle/s00.png", KEEPER_COPY])
    with store.batch():
        store.set_keeper(cluster_key(members), KEEPER_COPY)
        store.set(KEEPER_COPY, "keep", "keeper")
        store.set("3_mystyle/s00.png", "drop", f"duplicate of {KEEPER_COPY}")
        for rel in DROPS:
            store.set(rel, "drop", "review")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _headline(plan: dict) -> dict:
    """The numbers every surface must agree on."""
    buckets = {(b["width"], b["height"]): b["count"] for b in plan["buckets"]}
    return {
        "total_steps": plan["total_steps"],
        "steps_per_epoch": plan["steps_per_epoch"],
        "te_stop": plan["stop_text_encoder_training"],
        "buckets": buckets,
        "kept": plan["curation"]["kept_training_images"],
    }


def _bucket_settings(out: Path) -> BucketSettings:
    data = tomllib.loads((out / "dataset.toml").read_text())["datasets"][0]
    return BucketSettings(
        resolution=data["resolution"],
        min_bucket_reso=data["min_bucket_reso"],
        max_bucket_reso=data["max_bucket_reso"],
        bucket_reso_steps=data["bucket_reso_steps"],
        bucket_no_upscale=data["bucket_no_upscale"],
    )


def _kohya_view(out: Path) -> tuple[dict, int]:
    """The export read as Kohya's folder mode with a dataset config reads it: the subsets' folders listed with its
    extension list, image sizes from the raw header (no EXIF transpose), buckets by its rules; returns the bucket
    counts per epoch (training images x repeats) and the batch size the config sets."""
    config = tomllib.loads((out / "dataset.toml").read_text())
    data = config["datasets"][0]
    settings = BucketSettings(
        resolution=data["resolution"],
        min_bucket_reso=data["min_bucket_reso"],
        max_bucket_reso=data["max_bucket_reso"],
        bucket_reso_steps=data["bucket_reso_steps"],
    )
    counts: dict[tuple[int, int], int] = {}
    for subset in data["subsets"]:
        if subset["is_reg"]:
            continue
        for path in sorted(Path(subset["image_dir"]).iterdir()):
            if path.suffix not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
                continue
            with Image.open(path) as img:
                size = img.size  # raw header size, as Kohya reads it
            bucket = select_bucket(size[0], size[1], settings).bucket
            counts[bucket] = counts.get(bucket, 0) + subset["num_repeats"]
    return counts, data["batch_size"]


def _train(config_path: Path, model: Path, out: Path) -> dict:
    """Train the exported train.toml with the tiny model; the trainer's start event and its last step."""
    from trainer.events import read_events
    from trainer.loop import train

    config = TrainConfig.from_dict(tomllib.loads(config_path.read_text())).replace(
        pretrained_model_name_or_path=str(model),
        output_dir=str(out),
        mixed_precision="no",
        save_every_n_epochs=0,
        save_state=False,
        cache_latents=True,
    )
    result = train(config, show_progress=False)
    events = read_events(out / "events.jsonl")
    start = next(e for e in events if e["event"] == "start")
    return {"start": start, "steps": result.steps, "optimizer_steps": result.optimizer_steps}


@pytest.mark.slow
def test_every_surface_gives_the_same_numbers(tmp_path: Path, tiny_model: Path) -> None:
    train, reg = make_dataset(tmp_path)
    options = [
        "--reg", str(reg), "--caption-extension", ".caption", "--target-size", "5",
        "--batch", "2", "--epochs", "1", "--te-sensitivity", "0.4", *RESOLUTION, "--no-progress",
    ]  # fmt: skip
    _cli("scan", str(train), *options)  # the cache, so the review has items to decide on
    _review(train)

    planned = json.loads(_cli("plan", str(train), *options, "--json", "-"))
    expected = _headline(planned)
    assert (
        expected["kept"] == 10
    )  # 4+1 style after drops, dup and subset; 4 other after one drop, + phone + gif
    assert len(expected["buckets"]) >= 3 and any(n % 2 for n in expected["buckets"].values())
    assert (
        planned["curation"]["left_out"]
        == {"duplicate": 0, "review": 3, "subset": 2}
        | {
            k: v
            for k, v in planned["curation"]["left_out"].items()
            if k not in ("duplicate", "review", "subset")
        }
        or planned["curation"]["left_out"]["review"] == 3
    )

    report_json, report_html = tmp_path / "report.json", tmp_path / "report.html"
    _cli("scan", str(train), *options, "--json", str(report_json), "--html", str(report_html))
    assert _headline(json.loads(report_json.read_text())["plan"]) == expected
    html = report_html.read_text()
    for value in (expected["total_steps"], expected["steps_per_epoch"], expected["te_stop"]):
        assert re.search(rf">{value}<", html), value
    assert f'{expected["kept"]}</div><div class="l">training images an export keeps' in html

    from curator.commands.options import policy_from, scan_settings
    from curator.settings.options import settings_from_options
    from tui.backend import Backend

    kw = {"reg_root": reg, "caption_extension": ".caption", "target_size": 5, "no_progress": True}
    settings = settings_from_options(
        {"train_batch_size": 2, "max_train_epochs": 1, "text_encoder_sensitivity": 0.4, "resolution": 128,
         "min_bucket_reso": 64, "max_bucket_reso": 256}
    )  # fmt: skip
    backend = Backend(train, scan_settings(kw, settings), policy_from(kw))
    result = backend.scan(lambda done, total: None, lambda: False)
    assert _headline(backend.plan(result, settings).values) == expected

    out = tmp_path / "out"
    _cli("export", str(train), str(out), *options)
    assert _headline(json.loads((out / "plan.json").read_text())) == expected
    kohya_counts, kohya_batch = _kohya_view(out)
    assert kohya_batch == 2
    train_buckets = {b: n for b, n in expected["buckets"].items()}
    assert sum(kohya_counts.values()) * 2 == sum(
        train_buckets.values()
    )  # reg images match the training images
    assert all(kohya_counts[b] <= train_buckets[b] for b in kohya_counts)
    manifest = json.loads((out / "manifest.json").read_text())
    planned_bucket = {i["path"]: tuple(i["bucket"]) for i in planned["images"]}
    for item in (i for i in manifest["items"] if i["exported_as"]):
        exported = out / item["exported_as"]
        assert exported.suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # Kohya's listing reads it
        with Image.open(exported) as img:  # the raw header size, no EXIF transpose, as Kohya reads it
            kohya_bucket = select_bucket(img.size[0], img.size[1], _bucket_settings(out)).bucket
        assert kohya_bucket == planned_bucket[item["path"]], item
    upright = {i["path"]: i["upright_copy"] for i in manifest["items"] if i["upright_copy"]}
    assert set(upright) == {"5_otherchar/phone.jpg", "5_otherchar/anim.gif"}
    assert all(p.with_suffix(".caption").is_file() for p in (out / "img").rglob("*.png"))

    ran = _train(out / "train.toml", tiny_model, tmp_path / "model")
    assert ran["start"]["total_steps"] == expected["total_steps"] == ran["steps"] == ran["optimizer_steps"]
    assert ran["start"]["steps_per_epoch"] == expected["steps_per_epoch"]
    assert ran["start"]["te_stop_step"] == expected["te_stop"]


@pytest.mark.slow
def test_the_plan_tab_settings_are_what_export_and_training_use(tmp_path: Path, tiny_model: Path) -> None:
    asyncio.run(_plan_tab_to_training(tmp_path, tiny_model))


async def _plan_tab_to_training(tmp_path: Path, tiny_model: Path) -> None:
    from textual.widgets import Input

    from curator.commands.options import scan_settings
    from tui.app import create_app

    train, reg = make_dataset(tmp_path)
    _review(train)
    start = TrainConfig(resolution=128, min_bucket_reso=64, max_bucket_reso=256)
    kw = {"reg_root": reg, "caption_extension": ".caption", "no_progress": True}
    app = create_app(train, scan_settings(kw, start), training=start)
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.state.result is not None and app.state.plan is not None:
                break
        for name, value in (
            ("max_train_epochs", "1"),
            ("train_batch_size", "3"),
            ("text_encoder_sensitivity", "0.25"),
        ):
            app.query_one(f"#plan-{name}", Input).value = value
            await pilot.pause()
        assert (app.state.settings.max_train_epochs, app.state.settings.train_batch_size) == (1, 3)
        shown = app.state.plan.values
        out = tmp_path / "out"
        app.export_worker(out, str(tiny_model), False)
        for _ in range(400):
            await pilot.pause(0.05)
            if app.export_config is not None:
                break
    exported = tomllib.loads((out / "train.toml").read_text())
    assert (exported["max_train_epochs"], exported["train_batch_size"]) == (1, 3)
    assert exported["text_encoder_sensitivity"] == 0.25
    assert tomllib.loads((out / "dataset.toml").read_text())["datasets"][0]["batch_size"] == 3
    assert _headline(json.loads((out / "plan.json").read_text())) == _headline(shown)
    ran = _train(out / "train.toml", tiny_model, tmp_path / "model")
    assert ran["start"]["total_steps"] == shown["total_steps"] == ran["steps"]
    assert ran["start"]["te_stop_step"] == shown["stop_text_encoder_training"]
