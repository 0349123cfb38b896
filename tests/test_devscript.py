"""scripts/dev.py's set-up (sync): each requirement set has its own stamp, so run and test do not reinstall."""

from __future__ import annotations

import importlib.util
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
