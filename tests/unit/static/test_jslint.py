"""The pages' JS lint (sync): ESLint as the test command runs it refuses what it is there to refuse.

scripts/dev.py test installs ESLint (``npm ci``) before pytest; a bare pytest run without
``node_modules`` skips these, CI (``USERMETRICS_REQUIRE_SERVICES=1``) fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.machine import ROOT
from tests.support.machine import REQUIRE_SERVICES

ESLINT = ROOT / "node_modules" / ".bin" / "eslint"


@pytest.fixture
def lint():
    """``lint(source, path)``: the rule ids ESLint reports for ``source`` linted as the file ``path``."""
    if not ESLINT.exists():
        if REQUIRE_SERVICES:
            pytest.fail("ESLint is not installed: scripts/dev.py test runs npm ci (USERMETRICS_REQUIRE_SERVICES=1)")
        pytest.skip("ESLint is not installed: scripts/dev.py test runs npm ci first")

    def run(source: str, path: str = "static/usermetrics/js/probe.js") -> list[str]:
        result = subprocess.run(
            [str(ESLINT), "--format", "json", "--max-warnings", "0", "--stdin", "--stdin-filename", path],
            input=source,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=60,
        )
        assert result.returncode in (0, 1), result.stderr  # 2 would be ESLint itself failing (its config)
        return sorted(m["ruleId"] for f in json.loads(result.stdout) for m in f["messages"])

    return run


def test_jslint_refuses_var_and_a_let_never_assigned_again(lint):
    assert lint("var a = 1;\nlet b = 2;\nexport { a, b };\n") == ["no-var", "prefer-const"]


def test_jslint_knows_the_browser_and_uplot_globals_and_no_others(lint):
    source = "export const c = new uPlot({}, [], document.body);\nexport const d = window.location;\n"
    assert lint(source) == []
    assert lint("export const e = notAGlobal;\n") == ["no-undef"]


def test_jslint_leaves_vendored_files_alone(lint):
    # ESLint's answer for an ignored file is a warning ("File ignored..."), no rule id.
    assert lint("var a = 1;\n", "static/usermetrics/vendor/uplot/probe.js") == [None]
