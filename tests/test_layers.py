"""The layer rules of DESIGN.md, checked in fresh interpreters (sys.modules after import)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "textual", "trainer", "tui", "diffusers", "transformers", "open_clip")


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _heavy(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if m.split(".")[0] in HEAVY)


def test_import_curator_is_light() -> None:
    assert _heavy(_modules_after("import curator, curator.checks; curator.checks.image_checks()")) == []


def test_help_is_light() -> None:
    code = "from curator.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _heavy(_modules_after(code)) == []


def test_trainer_never_imports_tui() -> None:
    code = (
        "import pkgutil, importlib, trainer\n"
        "for m in pkgutil.walk_packages(trainer.__path__, 'trainer.'):\n"
        "    if m.name != 'trainer.__main__':\n"
        "        importlib.import_module(m.name)"
    )
    mods = _modules_after(code)
    assert not [m for m in mods if m.split(".")[0] in ("tui", "textual")]


def _imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import in ``package``, lazy ones inside functions included."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / package
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(root.parent)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((str(path.relative_to(root.parent)), node.module))
    return found


def test_imports_point_down_only() -> None:
    """The layering contract, statically (an import-linter equivalent): curator imports neither trainer nor the
    TUI, trainer never imports the TUI, and only the TUI imports textual; lazy imports count too."""
    forbidden = {"curator": ("trainer", "tui", "textual", "textual_image"), "trainer": ("tui", "textual")}
    bad = [
        f"{file} imports {module}"
        for package, banned in forbidden.items()
        for file, module in _imports(package)
        if module.split(".")[0] in banned
    ]
    assert bad == []


def test_every_command_declares_each_option_once() -> None:
    """One setting, one option: a command that declares an option twice (a setting added in two places) fails."""
    code = (
        "import warnings, click\n"
        "warnings.simplefilter('error')\n"
        "from curator.cli import cli\n"
        "ctx = click.Context(cli)\n"
        "for name in cli.list_commands(ctx):\n"
        "    command = cli.get_command(ctx, name)\n"
        "    subs = getattr(command, 'commands', {}) or {name: command}\n"
        "    for sub in subs.values():\n"
        "        sub.get_params(click.Context(sub))\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
