"""The companion's settings (sync, no NAT): read once from the NAT server's environment, checked, with defaults.

| variable | default | meaning |
| --- | --- | --- |
| ``USERMETRICS_NAT_REDIS_URL`` | (unset: no reports) | where to report, e.g. ``redis://user:pass@redis:6379/0`` |
| ``USERMETRICS_NAT_DEPLOYMENT`` | ``nat`` | the NAT deployment's name; usermetrics reads only its own |
| ``USERMETRICS_NAT_STREAM`` | ``usermetrics:nat:<deployment>`` | the Redis stream's key |
| ``USERMETRICS_NAT_INTERVAL`` | ``2`` | seconds between two reports of a worker |
| ``USERMETRICS_NAT_FULL_EVERY`` | ``15`` | every this many reports lists every user (the others: what changed) |
| ``USERMETRICS_NAT_MAXLEN`` | ``10000`` | the stream's bound (``XADD MAXLEN ~``), in entries |
| ``USERMETRICS_NAT_BUFFER`` | ``60`` | reports kept while Redis is unreachable; the oldest go first, counted |
| ``USERMETRICS_NAT_CONFIG_NAME`` | the workflow's type | what the worker's identity calls its config |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A companion variable that cannot be read (the message names it)."""


@dataclass(frozen=True)
class CompanionSettings:
    """The companion's settings."""

    redis_url: str
    deployment: str
    stream: str
    interval: float
    full_every: int
    maxlen: int
    buffer: int
    config_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, config_name: str = "") -> CompanionSettings:
        """The settings the environment gives (``config_name``: the default name of the worker's config)."""
        env = os.environ if env is None else env

        def text(name: str, default: str) -> str:
            return (env.get(name) or "").strip() or default

        def number(name: str, default: float, minimum: float) -> float:
            raw = text(name, "")
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum:g}, got {value:g}")
            return value

        deployment = text("USERMETRICS_NAT_DEPLOYMENT", "nat")
        return cls(
            redis_url=text("USERMETRICS_NAT_REDIS_URL", ""),
            deployment=deployment,
            stream=text("USERMETRICS_NAT_STREAM", f"usermetrics:nat:{deployment}"),
            interval=number("USERMETRICS_NAT_INTERVAL", 2.0, 0.05),
            full_every=int(number("USERMETRICS_NAT_FULL_EVERY", 15, 1)),
            maxlen=int(number("USERMETRICS_NAT_MAXLEN", 10_000, 10)),
            buffer=int(number("USERMETRICS_NAT_BUFFER", 60, 1)),
            config_name=text("USERMETRICS_NAT_CONFIG_NAME", config_name or "nat"),
        )
