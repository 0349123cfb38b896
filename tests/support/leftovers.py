"""The test run's guard against leftover processes (sync pytest plugin).

Whole-stack tests start real processes (Daphne, producers, NAT servers, Redis, Chromium) and must
stop every one of them. At the end of the run this plugin lists every process the run started
that still runs, kills it and fails the run, naming each. The run makes itself a child
subreaper (Linux), so a process orphaned on the way (a producer whose Daphne was killed) is
re-parented to the run instead of to init, and is seen too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import pytest

PR_SET_CHILD_SUBREAPER = 36
# Seconds a process that is stopping (a producer writing its history) gets before it counts as left over.
GRACE = float(os.environ.get("USERMETRICS_LEFTOVER_GRACE", "15"))


def _state_and_cmdline(pid: int) -> tuple[str, str] | None:
    """A process's state letter and command line (None: it is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    return state, cmdline


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from every thread's ``children`` list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def running_descendants(pid: int) -> dict[int, str]:
    """Every live (not zombie) descendant of ``pid`` with its command line."""
    found: dict[int, str] = {}
    todo = children(pid)
    while todo:
        child = todo.pop()
        seen = _state_and_cmdline(child)
        if seen is not None and seen[0] != "Z":
            found[child] = seen[1]
        todo.extend(children(child))
    return found


def _reap() -> None:
    """Collect the exit status of orphans re-parented to us that have ended (no zombies left behind)."""
    for pid in children(os.getpid()):
        seen = _state_and_cmdline(pid)
        if seen is not None and seen[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def pytest_configure(config: pytest.Config) -> None:
    """Become the subreaper of every process the run starts (Linux; elsewhere only direct children are seen)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process it started still runs at its end (after ``GRACE`` seconds to stop)."""
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + GRACE
    left = running_descendants(os.getpid())
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = running_descendants(os.getpid())
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2 if left else 0)
    _reap()
    if left:
        lines = "\n".join(f"  pid {pid}: {cmdline}" for pid, cmdline in sorted(left.items()))
        message = f"{len(left)} process(es) the tests started still ran at the end of the run (now killed):\n{lines}"
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "leftover processes", red=True)
            reporter.write_line(message)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
