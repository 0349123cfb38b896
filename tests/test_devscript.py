"""scripts/dev.py (sync): a stamp per requirement set, the docs built by the test command, a short README."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

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


# Each install is the requirement set, then the project itself (editable, from the repository root).
RUN = ["requirements.txt", ROOT.name]
TEST = ["requirements-dev.txt", ROOT.name]


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


@pytest.mark.parametrize("changed", ["requirements.txt", "pyproject.toml"])
def test_devscript_a_changed_file_installs_again(dev, monkeypatch, tmp_path, changed):
    dev.ensure_venv("requirements.txt")
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        text = (ROOT / name).read_text()
        (tmp_path / name).write_text(text + "\n# changed\n" if name == changed else text)
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    dev.ensure_venv("requirements.txt")
    assert dev.installs == [*RUN, "requirements.txt", tmp_path.name]


def test_devscript_test_builds_the_docs_strictly_after_the_linters_and_before_pytest(dev, monkeypatch):
    steps: list[str] = []
    monkeypatch.setattr(dev, "ensure_venv", lambda requirements: None)
    monkeypatch.setattr(dev, "sh", lambda *cmd, env=None: steps.append(" ".join(Path(str(c)).name for c in cmd)))
    monkeypatch.setattr(
        dev.subprocess, "run", lambda cmd, **kwargs: steps.append("pytest") or dev.subprocess.CompletedProcess(cmd, 0)
    )
    with pytest.raises(SystemExit) as stop:
        dev.test([])
    assert stop.value.code == 0
    docs = next(i for i, step in enumerate(steps) if step.startswith("mkdocs build --strict"))
    assert steps.index("lint-imports") < docs < steps.index("pytest")


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
