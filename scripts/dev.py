#!/usr/bin/env python3
"""Set-up and entry point for people and CI (sync): ``run`` serves the dashboard, ``test`` runs the suite.

Needs only Python 3.11+. Both commands create ``.venv`` at the repository root and install the
pinned requirements into it (again only when a requirements file changed). ``test`` also lints the
pages' JavaScript with ESLint, installed by ``npm ci`` from package-lock.json into ``node_modules``
(Node.js 20+ and npm needed; again only when package.json or the lockfile changed).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
VAR = ROOT / "var"
NODE_MODULES = ROOT / "node_modules"


def sh(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    """Run a command, echoing it; stop on failure."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install ``requirements`` and the project into it unless already installed as they are now.

    One stamp file per requirement set: ``run`` (requirements.txt) and ``test``
    (requirements-dev.txt, which includes it) each remember what they installed, so switching
    between the two commands installs nothing when neither file changed.
    """
    if not PY.exists():
        print(f"Creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml", "companion/pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".usermetrics-{Path(requirements).stem}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    sh(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", ROOT / requirements)
    # The project itself, editable: its metadata (the version /api/status reports) comes from pyproject.toml.
    # And the NAT companion's package without its dependencies (NAT itself): the dashboard shares its
    # Django-free core (the seed, the histogram, the report's wire form).
    pip = (PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "--no-build-isolation")
    sh(*pip, "-e", ROOT)
    sh(*pip, "-e", ROOT / "companion")
    stamp.write_text(digest.hexdigest())
    if requirements == "requirements-dev.txt":
        # The dev set includes the runtime set: the run command has nothing left to install.
        (VENV / ".usermetrics-requirements").write_text(digest.hexdigest())


def ensure_node_modules() -> None:
    """Install the pinned JS lint tools with ``npm ci`` unless already installed as the lockfile is now.

    The stamp lives inside ``node_modules``: ``npm ci`` starts by removing that folder, so a
    half-done install leaves no stamp, and a deleted ``node_modules`` installs again.
    """
    if shutil.which("npm") is None:
        sys.exit("npm not found: the test command lints the pages' JavaScript with ESLint (Node.js 20+, npm)")
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((ROOT / name).read_bytes())
    stamp = NODE_MODULES / ".usermetrics-package-lock"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    sh("npm", "ci", "--no-audit", "--no-fund")
    stamp.write_text(digest.hexdigest())


def secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/secret_key."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    VAR.mkdir(exist_ok=True)
    path = VAR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


def run() -> None:
    """Install, migrate, ensure an admin exists, and serve with Daphne on 127.0.0.1:8000."""
    ensure_venv("requirements.txt")
    env = {**os.environ, "SECRET_KEY": secret_key()}
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("DJANGO_SETTINGS_MODULE", "monitor_site.settings")
    host = env.get("USERMETRICS_HOST", "127.0.0.1")
    port = env.get("USERMETRICS_PORT", "8000")
    sh(PY, "manage.py", "migrate", "--noinput", "-v", "0", env=env)
    sh(PY, "manage.py", "ensureadmin", env=env)
    print(f"\nusermetrics: http://{host}:{port}/  (log in as the admin user above; Ctrl+C stops)\n", flush=True)
    os.chdir(ROOT)
    os.execve(
        str(PY),
        [str(PY), "-m", "daphne", "-b", host, "-p", port, "monitor_site.asgi:application"],
        env,
    )


def test(args: list[str]) -> None:
    """Install the dev tools, check style (Python, the pages' JS) and the layering contracts, run the whole suite."""
    ensure_venv("requirements-dev.txt")
    sh(PY, "-m", "ruff", "check", ".")
    sh(PY, "-m", "ruff", "format", "--check", ".")
    ensure_node_modules()
    sh("npm", "run", "--silent", "lint")  # ESLint over static/usermetrics/js (package.json), no warning allowed
    sh(VENV / "bin" / "lint-imports")
    # The docs (mkdocs.yml): a broken link, a page missing from the nav or a failing generated table stops the suite.
    sh(VENV / "bin" / "mkdocs", "build", "--strict", "--quiet", "--site-dir", ROOT / "site")
    result = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT)
    if result.returncode == 5:
        sys.exit("pytest collected no tests: that is a failure here")
    sys.exit(result.returncode)


def main() -> None:
    """Dispatch ``run`` or ``test``."""
    if sys.version_info < (3, 11):  # noqa: UP036 - the point is to say so on an older Python
        sys.exit(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        sys.exit("usage: python3 scripts/dev.py run | test [pytest args...]")
    if sys.argv[1] == "run":
        run()
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
