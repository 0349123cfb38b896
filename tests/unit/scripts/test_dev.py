"""scripts/dev.py (sync): a stamp per requirement set and for the JS tools, the test command's steps, a short README."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.machine import ROOT


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


# Each install is the requirement set, then the project itself and the NAT companion's package (editable).
RUN = ["requirements.txt", ROOT.name, "companion"]
TEST = ["requirements-dev.txt", ROOT.name, "companion"]


def test_devscript_run_and_test_alternate_without_reinstalling(dev):
    dev.ensure_venv("requirements.txt")
    dev.ensure_venv("requirements-dev.txt")
    assert dev.installs == RUN + TEST
    for _ in range(2):
        dev.ensure_venv("requirements.txt")
        dev.ensure_venv("requirements-dev.txt")
    assert dev.installs == RUN + TEST


def test_devscript_test_first_leaves_nothing_for_run(dev):
    dev.ensure_venv("requirements-dev.txt")
    dev.ensure_venv("requirements.txt")
    assert dev.installs == TEST


@pytest.mark.parametrize("changed", ["requirements.txt", "pyproject.toml", "companion/pyproject.toml"])
def test_devscript_a_changed_file_installs_again(dev, monkeypatch, tmp_path, changed):
    dev.ensure_venv("requirements.txt")
    (tmp_path / "companion").mkdir()
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml", "companion/pyproject.toml"):
        text = (ROOT / name).read_text()
        (tmp_path / name).write_text(text + "\n# changed\n" if name == changed else text)
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    dev.ensure_venv("requirements.txt")
    assert dev.installs == [*RUN, "requirements.txt", tmp_path.name, "companion"]


README_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_devscript_readme_is_short_and_links_only_to_docs_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    nav = set(re.findall(r"\b([\w-]+\.md)\b", (ROOT / "mkdocs.yml").read_text()))
    links = [link for link in README_LINK.findall(readme) if "://" not in link]
    pages = [link.split("#")[0] for link in links if link.split("#")[0].endswith(".md")]
    assert pages, "the README maps the docs"
    for link in links:
        path = link.split("#")[0]
        assert path.startswith("docs/") and (ROOT / path).is_file(), link
    for page in pages:
        assert Path(page).name in nav, f"{page} is not in mkdocs.yml's nav"


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


def test_devscript_test_runs_the_linters_then_the_docs_build_then_pytest(npm, monkeypatch):
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
        "mkdocs build --strict --quiet --site-dir site",
        "pytest",
    ]


def test_devscript_without_npm_the_test_command_says_so(npm, monkeypatch):
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="npm not found"):
        npm.ensure_node_modules()
    assert npm.commands == []
