"""usermetrics: a live, admin-style dashboard of the per-user workflows of AI agent servers.

``__version__`` is the installed distribution's version (pyproject.toml is its one source).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("usermetrics")
except PackageNotFoundError:  # run from a checkout without `pip install -e .` (scripts/dev.py installs it)
    __version__ = "0+unknown"
