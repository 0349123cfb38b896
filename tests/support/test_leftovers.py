"""The run's guard: a process a test started and left running (or orphaned) fails the run, and is killed."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from tests.support.machine import ROOT

# The sleeps last a number of seconds of this run's own: other checkouts' suites run this test on
# the same machine at the same time, and what ours looks for must be what ours started.
LEAVES_TWO = """
import subprocess

def test_leaves_a_child_and_an_orphan():
    subprocess.Popen(["sleep", "{0}"])  # never stopped
    subprocess.run(["sh", "-c", "sleep {1} &"], check=True)  # its parent exits at once: an orphan


def test_stops_its_own():
    proc = subprocess.Popen(["sleep", "{2}"])
    proc.terminate()
    proc.wait()
"""


def test_leftovers_a_run_that_leaves_processes_fails_and_names_them(tmp_path: Path):
    first = 100_000 + random.randrange(1_000_000) * 3  # seconds: never reached, the sleeps are killed
    a, b, c = first, first + 1, first + 2
    (tmp_path / "test_inner.py").write_text(LEAVES_TWO.format(a, b, c))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "USERMETRICS_LEFTOVER_GRACE": "1"}
    plugins = ["-p", "tests.support.leftovers", "-p", "no:django", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *plugins,
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-q",
            "test_inner.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "2 process(es) the tests started still ran" in result.stdout
    assert f"sleep {a}" in result.stdout and f"sleep {b}" in result.stdout and f"sleep {c}" not in result.stdout
    # ... and they were killed: nothing of the inner run is left for ours to find.
    left = subprocess.run(["pgrep", "-f", f"^sleep ({a}|{b})$"], capture_output=True, text=True)
    assert left.stdout == ""
