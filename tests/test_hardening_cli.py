"""Every user-facing command against hostile input: a clear one-line error (exit 2 for usage, 1 for a handled
failure) and never a traceback; and the promise that nothing a command reads is changed (images and captions stay
byte-identical through scan, tags, plan and export)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from curator.cli import cli
from curator.dataset.sample import make_sample_dataset
from curator.scan.results import ScanSettings
from curator.scan.run import scan

REPO = Path(__file__).resolve().parents[1]


def _tiny_dataset(root: Path, images: int = 3) -> Path:
    """``root/train/2_tiny`` with small readable images and captions."""
    concept = root / "train" / "2_tiny"
    concept.mkdir(parents=True)
    for i in range(images):
        pixels = np.random.default_rng(i).integers(0, 255, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(concept / f"img{i}.png")
        (concept / f"img{i}.txt").write_text("tiny, a thing, a thing\n")
    return root / "train"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of bad inputs shared by the parametrized cases (none of them writes into it, except where a
    case makes its own copy)."""
    base = tmp_path_factory.mktemp("hostile")
    _tiny_dataset(base / "good")
    (base / "empty").mkdir()
    corrupt = base / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.png").write_text("not an image")
    (corrupt / "b.jpg").write_bytes(b"")
    (corrupt / "c.webp").write_bytes(os.urandom(64))
    (base / "afile.txt").write_text("a file where a folder is expected\n")
    (base / "a folder").mkdir()
    (base / "model.txt").write_text("not a model\n")
    from safetensors.numpy import save_file

    lora_key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file(
        {
            f"{lora_key}.lora_down.weight": np.zeros((4, 32), np.float32),
            f"{lora_key}.lora_up.weight": np.zeros((32, 4), np.float32),
        },
        str(base / "lora.safetensors"),
    )
    config = base / "train.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "{base / "model.txt"}"\n'
        f'train_data_dir = "{base / "good"}"\noutput_dir = "{base / "trained"}"\n'
    )
    (base / "unknown.toml").write_text(config.read_text() + "bogus_setting = 3\n")
    (base / "wrongtype.toml").write_text(config.read_text() + 'resolution = "big"\n')
    (base / "nobase.toml").write_text(f'train_data_dir = "{base / "good"}"\n')
    (base / "lora.toml").write_text(config.read_text().replace("model.txt", "lora.safetensors"))
    (base / "negative.toml").write_text(config.read_text() + "max_train_epochs = -1\n")
    (base / "broken.toml").write_text("this is = not [toml\n")
    return base


# (arguments with {w} for the world folder, exit code, words the message must hold)
CASES: list[tuple[str, int, str]] = [
    ("scan {w}/nope", 2, "does not exist"),
    ("scan {w}/afile.txt", 2, "is not a folder"),
    ("tags {w}/nope", 2, "does not exist"),
    ("plan {w}/afile.txt", 2, "is not a folder"),
    ("export {w}/nope {w}/out", 2, "does not exist"),
    ("export {w}/afile.txt {w}/out", 2, "is a file"),
    ("plan {w}/empty", 1, "No training images"),
    ("plan {w}/corrupt", 1, "is kept (3 unreadable)"),  # plan curates: unreadable images are left out
    ("plan {w}/corrupt --raw", 1, "No readable training image"),
    ("export {w}/empty {w}/out-empty", 1, "nothing to export"),
    ("export {w}/corrupt {w}/out-corrupt", 1, "nothing to export"),
    ("export {w}/good/train {w}/good/train/sub", 1, "inside the dataset"),
    ("export {w}/good/train {w}/a folder", 1, "already exists"),
    ("export {w}/good/train {w}/afile.txt --force", 1, "not a folder"),
    ("scan {w}/good/train --resolution 500 --no-progress", 2, "multiple of 8"),
    ("review {w}/good/train --resolution 500", 2, "multiple of 8"),  # before the app starts
    ("review {w}/good/train --reg {w}/good", 2, "regularization folder"),
    ("plan {w}/good/train --resolution 500", 2, "multiple of 8"),
    ("plan {w}/good/train --bucket-steps 60", 2, "multiple of 8"),
    ("export {w}/good/train {w}/out-res --resolution 500", 2, "multiple of 8"),
    # the message names the setting's Kohya option (--batch, --epochs, --bucket-min are its aliases)
    ("plan {w}/good/train --batch 0", 2, "'--train-batch-size'"),
    ("plan {w}/good/train --epochs -1", 2, "'--max-train-epochs'"),
    ("plan {w}/good/train --bucket-min 1024 --bucket-max 512", 2, "'--min-bucket-reso'"),
    ("tags {w}/good/train --replace foo", 2, "OLD=NEW"),
    ("tags {w}/good/train --add-trigger=", 2, "empty tag"),
    ("tags {w}/good/train --add-trigger=a,b", 2, "several tags"),
    ("tags {w}/good/train --remove=", 2, "empty tag"),
    ("tags {w}/good/train --apply", 2, "needs an edit"),
    ("plan {w}/good/train --reg {w}/good/train", 2, "regularization folder"),
    ("tags {w}/good/train --reg {w}/good", 2, "regularization folder"),
    ("scan {w}/good/train --no-progress --reg {w}/good", 2, "regularization folder"),
    ("scan {w}/good/train --no-progress --clip-model ViT-B-32", 2, "--clip-weights"),
    ("scan {w}/good/train --no-progress --clip-weights {w}/model.txt", 2, "--clip-model"),
    ("scan {w}/good/train --no-progress --html {w}/afile.txt/x.html", 1, "is a file"),
    ("scan {w}/good/train --no-progress --json {w}/a folder", 1, "is a folder"),
    ("plan {w}/good/train --json {w}/nodir/p.json", 1, "does not exist"),
    ("train {w}/nope.toml", 1, "not found"),
    ("train {w}/broken.toml", 1, "not valid TOML"),
    ("train {w}/unknown.toml", 1, "unknown setting 'bogus_setting'"),
    ("train {w}/wrongtype.toml", 1, "resolution"),
    ("train {w}/nobase.toml", 1, "pretrained_model_name_or_path"),
    ("train {w}/train.toml", 1, "unsupported file type"),
    ("train {w}/lora.toml", 1, "LoRA"),
    ("train {w}/negative.toml", 1, "max_train_epochs"),
    ("train {w}/negative.toml --resolution 512", 1, "negative.toml: max_train_epochs"),  # the file's value
    ("train {w}/train.toml --train-batch-size 0", 2, "Invalid value for '--train-batch-size'"),
    ("train {w}/train.toml --resolution 500", 2, "multiple of 8"),
    ("train {w}/train.toml --max-train-epochs -3", 2, "Invalid value for '--max-train-epochs'"),
    ("train {w}/train.toml --resolution 2048", 2, "'--resolution'"),  # past the file's max_bucket_reso
    ("train {w}/never-written.toml --init --train-batch-size 0", 2, "'--train-batch-size'"),
    (
        "run {w}/good/train --base {w}/lora.safetensors --out {w}/run-o -y --resolution 500",
        2,
        "multiple of 8",
    ),
    ("run {w}/good/train --base {w}/lora.safetensors --out {w}/run-o -y --max-train-epochs -3", 2, "epochs"),
    ("model info {w}/model.txt", 1, "unsupported file type"),
    ("model info {w}/lora.safetensors", 1, "LoRA"),
    ("model info {w}/nope.safetensors", 2, "does not exist"),
    ("run {w}/good/train --base {w}/lora.safetensors --out {w}/run-out -y", 1, "LoRA"),
]


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args)


def _split(template: str, world: Path) -> list[str]:
    # "{w}/a folder" holds a space: split on spaces that do not follow "/a"
    parts = template.replace("{w}/a folder", "\0").split(" ")
    return [p.replace("\0", str(world / "a folder")).replace("{w}", str(world)) for p in parts]


@pytest.mark.parametrize(("template", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(world: Path, template: str, code: int, words: str) -> None:
    result = _invoke(_split(template, world))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert words in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.stderr


def test_export_force_never_deletes_a_users_folder(world: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my pictures"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"precious")
    result = _invoke(["export", str(world / "good" / "train"), str(mine), "--force"])
    assert result.exit_code == 1 and "not an earlier dreamcurate export" in result.stderr
    assert (mine / "holiday.png").read_bytes() == b"precious"


def test_run_force_refuses_a_users_folder_before_the_scan(world: Path, tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path)
    mine = tmp_path / "my pictures"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"precious")
    base = world / "lora.safetensors"  # never read: the OUT check comes first
    result = _invoke(["run", str(root), "--base", str(base), "--out", str(mine), "--force", "-y"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "not an earlier dreamcurate export" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1
    assert not (root / ".dreamcurate").exists()  # refused before the scan (which creates the workspace)
    assert (mine / "holiday.png").read_bytes() == b"precious" and len(list(mine.iterdir())) == 1


def test_workspace_that_cannot_be_created(tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path)
    (root / ".dreamcurate").write_text("a file where the workspace folder would go")
    before = _hashes(root)
    scanned = _invoke(["scan", str(root), "--no-progress"])
    assert scanned.exit_code == 0 and "cache_unavailable" in scanned.output  # a finding, not a failure
    applied = _invoke(["tags", str(root), "--dedupe", "--apply"])
    assert applied.exit_code == 1
    assert "cannot create the workspace" in applied.stderr and "--workspace" in applied.stderr
    assert "no caption was changed" in applied.stderr
    assert _hashes(root) == before
    workspace = tmp_path / "elsewhere"
    again = _invoke(["tags", str(root), "--dedupe", "--apply", "--workspace", str(workspace)])
    assert again.exit_code == 0 and (workspace / "journal").is_dir()


def _run_module(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "curator", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_real_entry_point_turns_os_errors_into_one_line(world: Path) -> None:
    # demo's first write goes under a path whose parent is a file: an OSError no command handles itself
    done = _run_module(["demo", "--no-train", "--out", str(world / "afile.txt" / "demo")], world)
    assert "Traceback" not in done.stderr
    assert done.returncode == 1
    assert "afile.txt" in done.stderr and "is a file where a folder is needed" in done.stderr
    missing = _run_module(["scan", "nope"], world)
    assert (
        missing.returncode == 2 and "Traceback" not in missing.stderr and "does not exist" in missing.stderr
    )


def test_review_missing_folder_is_one_line(world: Path) -> None:
    result = _invoke(["review", str(world / "nope")])
    assert result.exit_code == 2 and "Traceback" not in result.output and "does not exist" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_interrupted_scan_keeps_a_usable_cache(tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path, images=6)
    settings = ScanSettings(workers=1, progress=False)

    def stop_after_four(done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main process

    with pytest.raises(KeyboardInterrupt):
        scan(root, settings, on_progress=stop_after_four)
    again = scan(root, ScanSettings(workers=1, progress=False))
    assert (again.cached, again.analysed) == (4, 2)
    assert all(r.decoded for r in again.records)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dreamcurate" not in p.parts
    }


def test_nothing_a_command_reads_is_changed(tmp_path: Path) -> None:
    root = make_sample_dataset(tmp_path / "sample")
    before = _hashes(root)
    assert any(name.endswith(".png") for name in before) and any(name.endswith(".txt") for name in before)
    commands: list[list[str]] = [
        [
            "scan",
            str(root),
            "--no-progress",
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
        ["tags", str(root)],
        ["tags", str(root), "--dedupe", "--add-trigger", "newtrigger", "--replace", "cat=dog"],  # dry run
        ["plan", str(root), "--json", str(tmp_path / "p.json")],
        ["export", str(root), str(tmp_path / "out")],
    ]
    check: Callable[[Result], bool] = lambda r: r.exit_code == 0 and r.exception is None  # noqa: E731
    for args in commands:
        result = _invoke(args)
        assert check(result), (args, result.output)
        assert _hashes(root) == before, args
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_odd_names_scan_plan_export(tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path, images=2)
    huge = root / "99999999999999999999_huge"
    huge.mkdir()
    Image.new("RGB", (96, 64), (200, 10, 10)).save(huge / "a.png")
    (root / "0_zero").mkdir()
    Image.new("RGB", (96, 64), (10, 200, 10)).save(root / "0_zero" / "a.png")
    folder = os.fsencode(root / "2_tiny")
    with open(os.path.join(folder, b"n\xe9.png"), "wb") as handle:  # a name that is not UTF-8
        Image.new("RGB", (96, 64), (10, 10, 200)).save(handle, format="PNG")
    scanned = _invoke(["scan", str(root), "--no-progress", "--html", str(tmp_path / "r.html")])
    assert scanned.exit_code == 0, scanned.output
    assert "repeats_out_of_range" in scanned.output and "repeats_zero" in scanned.output
    assert _invoke(["plan", str(root)]).exit_code == 0
    exported = _invoke(["export", str(root), str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    import json

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert any("\udce9" in item["path"] for item in manifest["items"])
    assert (tmp_path / "out" / "img" / "10000_huge").is_dir()
    # most UTF-8 locales make stdout strict (this machine's C.UTF-8 does not): printing the name must not fail
    printed = _run_module(["tags", str(root), "--dedupe"], tmp_path, PYTHONIOENCODING="utf-8:strict")
    assert printed.returncode == 0 and "Traceback" not in printed.stderr, printed.stderr
    assert "n\\xe9.png" in printed.stdout  # the byte that is not UTF-8 shown as an escape


@pytest.mark.parametrize(
    ("damage", "args", "words"),
    [
        ("decisions.sqlite", ["export", "{root}", "{out}"], "cannot be read"),
        (
            "journal/20000101-000000-000000.json",
            ["tags", "{root}", "--undo"],
            "not a dreamcurate tag journal",
        ),
    ],
)
def test_damaged_workspace_files(tmp_path: Path, damage: str, args: list[str], words: str) -> None:
    root = _tiny_dataset(tmp_path)
    target = root / ".dreamcurate" / damage
    target.parent.mkdir(parents=True)
    target.write_text("[1, 2]")  # neither a database nor a journal
    before = _hashes(root)
    result = _invoke([a.format(root=root, out=tmp_path / "out") for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert words in result.stderr, result.stderr
    assert _hashes(root) == before


_READ_ONLY_SCRIPT = """
mount --bind "$SRC" "$MNT" && mount -o remount,bind,ro "$MNT" || exit 77
touch "$MNT/probe" 2>/dev/null && exit 77
run() { "$PY" -m curator "$@" > "$OUTDIR/$1-$#.out" 2>&1; echo "$1 $# $?"; }
run scan "$MNT" --no-progress
run scan "$MNT" --no-progress --workspace "$WS"
run tags "$MNT" --dedupe --apply --workspace "$WS"
run export "$MNT" "$OUTDIR/export" --workspace "$WS"
"""


def test_read_only_dataset(tmp_path: Path) -> None:
    """A dataset on a read-only mount (a private mount namespace; skipped where that is not allowed)."""
    import shutil

    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a read-only bind mount")
    src = _tiny_dataset(tmp_path / "src")
    (src / "2_tiny" / "img0.txt").write_text("tiny, a thing, a thing\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    before = _hashes(src)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        SRC=str(src),
        MNT=str(mnt),
        WS=str(tmp_path / "ws"),
        OUTDIR=str(tmp_path),
        PY=sys.executable,
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", _READ_ONLY_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode == 77 or "unshare:" in done.stderr:
        pytest.skip(f"no read-only bind mount here: {done.stderr.strip()[:200]}")
    codes = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
    assert codes == {"scan 3": "0", "scan 5": "0", "tags 6": "1", "export 5": "0"}, done.stdout
    assert "cache_unavailable" in (tmp_path / "scan-3.out").read_text()
    assert (tmp_path / "ws" / "cache.sqlite").is_file()
    tags_out = (tmp_path / "tags-6.out").read_text()
    assert "read-only" in tags_out and "no caption was changed" in tags_out and "Traceback" not in tags_out
    assert not (tmp_path / "ws" / "journal").exists()
    assert (tmp_path / "export" / "manifest.json").is_file()
    assert _hashes(src) == before


def test_plan_with_absurd_epochs_and_steps_answers_at_once(world: Path) -> None:
    # the checkpoint count was a loop over every epoch: 10^15 epochs never returned
    for option in ("--epochs", "--steps"):
        done = _run_module(["plan", str(world / "good" / "train"), option, str(10**15)], world)
        # answered at once: a plan, or (past the settings' bounds) a one-line usage error naming the option
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 0 or "must be at most" in done.stderr
