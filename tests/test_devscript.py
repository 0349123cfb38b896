"""scripts/dev.py's set-up (sync): each requirement set and the JS lint tools have a stamp, so nothing reinstalls."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dev(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("usermetrics_dev_script", ROOT / "scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")  # the venv "exists": only the installs are watched
    monkeypatch.setattr(module, "VENV", venv)
    monkeypatch.setattr(module, "PY", venv / "bin" / "python")
    installs: list[str] = []
    monkeypatch.setattr(module, "sh", lambda *cmd, env=None: installs.append(Path(str(cmd[-1])).name))
    module.installs = installs
    return module


def test_devscript_run_and_test_alternate_without_reinstalling(dev):
    dev.ensure_venv("requirements.txt")
    dev.ensure_venv("requirements-dev.txt")
    assert dev.installs == ["requirements.txt", "requirements-dev.txt"]
    for _ in range(2):
        dev.ensure_venv("requirements.txt")
        dev.ensure_venv("requirements-dev.txt")
    assert dev.installs == ["requirements.txt", "requirements-dev.txt"]


def test_devscript_test_first_leaves_nothing_for_run(dev):
    dev.ensure_venv("requirements-dev.txt")
    dev.ensure_venv("requirements.txt")
    assert dev.installs == ["requirements-dev.txt"]


def test_devscript_a_changed_file_installs_again(dev, monkeypatch, tmp_path):
    dev.ensure_venv("requirements.txt")
    (tmp_path / "requirements.txt").write_text((ROOT / "requirements.txt").read_text() + "\n# changed\n")
    (tmp_path / "requirements-dev.txt").write_text((ROOT / "requirements-dev.txt").read_text())
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    dev.ensure_venv("requirements.txt")
    assert dev.installs == ["requirements.txt", "requirements.txt"]


@pytest.fixture
def npm(dev, tmp_path, monkeypatch):
    """``dev`` on a copy of package.json and its lockfile, every command recorded; ``npm ci`` stubbed.

    Like the real one, the stub's ``npm ci`` makes ``node_modules`` afresh (the stamp goes with it).
    """
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("package.json", "package-lock.json"):
        (root / name).write_bytes((ROOT / name).read_bytes())
    monkeypatch.setattr(dev, "ROOT", root)
    monkeypatch.setattr(dev, "NODE_MODULES", root / "node_modules")
    monkeypatch.setattr(dev.shutil, "which", lambda name: f"/usr/bin/{name}")
    commands: list[str] = []

    def sh(*cmd, env=None):
        commands.append(" ".join(c.name if isinstance(c, Path) else str(c) for c in cmd))
        if cmd[:2] == ("npm", "ci"):
            shutil.rmtree(root / "node_modules", ignore_errors=True)
            (root / "node_modules").mkdir()

    monkeypatch.setattr(dev, "sh", sh)
    dev.commands = commands
    return dev


def test_devscript_npm_ci_again_only_for_a_changed_lockfile_or_a_missing_node_modules(npm):
    for _ in range(2):
        npm.ensure_node_modules()
    assert npm.commands == ["npm ci --no-audit --no-fund"]
    lock = npm.ROOT / "package-lock.json"
    lock.write_text(lock.read_text() + "\n")
    for _ in range(2):
        npm.ensure_node_modules()
    assert len(npm.commands) == 2
    shutil.rmtree(npm.NODE_MODULES)
    npm.ensure_node_modules()
    assert len(npm.commands) == 3


def test_devscript_test_lints_the_js_after_ruff_and_before_pytest(npm, monkeypatch):
    monkeypatch.setattr(npm, "ensure_venv", lambda requirements: None)
    monkeypatch.setattr(
        npm.subprocess, "run", lambda cmd, cwd=None: npm.commands.append("pytest") or SimpleNamespace(returncode=0)
    )
    with pytest.raises(SystemExit) as exit_:
        npm.test([])
    assert exit_.value.code == 0
    assert npm.commands == [
        "python -m ruff check .",
        "python -m ruff format --check .",
        "npm ci --no-audit --no-fund",
        "npm run --silent lint",
        "lint-imports",
        "pytest",
    ]


def test_devscript_without_npm_the_test_command_says_so(npm, monkeypatch):
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="npm not found"):
        npm.ensure_node_modules()
    assert npm.commands == []
