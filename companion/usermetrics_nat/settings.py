"""The companion's settings (sync, no NAT): read once from the NAT server's environment, checked, with defaults.

``VARIABLES`` is the one table of them (name, default, meaning); the docs' table is generated
from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One environment variable of the companion."""

    name: str
    default: str  # as written in the environment ("" : unset)
    meaning: str


VARIABLES = (
    Variable(
        "USERMETRICS_NAT_REDIS_URL",
        "",
        "Where to report, e.g. `redis://companion:secret@redis:6379/0`. Unset: no reports (NAT serves as always).",
    ),
    Variable(
        "USERMETRICS_NAT_DEPLOYMENT",
        "nat",
        "The NAT deployment's name, in every report; usermetrics reads only its own.",
    ),
    Variable("USERMETRICS_NAT_STREAM", "usermetrics:nat:<deployment>", "The Redis stream's key."),
    Variable(
        "USERMETRICS_NAT_INTERVAL",
        "2",
        "Seconds between two reports of a worker (a worker silent for three of them has stopped).",
    ),
    Variable(
        "USERMETRICS_NAT_FULL_EVERY",
        "15",
        "Every this many reports lists every user; the others list the users that changed.",
    ),
    Variable("USERMETRICS_NAT_MAXLEN", "10000", "The stream's bound in entries (`XADD ... MAXLEN ~`)."),
    Variable(
        "USERMETRICS_NAT_BUFFER",
        "60",
        "Reports kept while Redis is unreachable; when full, the oldest goes (counted).",
    ),
    Variable("USERMETRICS_NAT_CONFIG_NAME", "the workflow's type", "What the worker's identity calls its NAT config."),
    Variable(
        "USERMETRICS_NAT_COMMANDS",
        "on",
        "`off`: ignore usermetrics' commands (evict, hold); the dashboard then reports that no worker answered.",
    ),
)


# What a companion needs of Redis: to add entries to its stream (and to select the database its URL
# names). A Redis ACL user with these commands and only its stream's key (``~<stream>``) may do
# nothing else: ``ACL SETUSER <user> on ><password> resetkeys ~<stream> resetchannels -@all +xadd +select``.
ACL_COMMANDS = "-@all +xadd +select"
# And to take usermetrics' commands (``commands``): read the command stream and write each answer,
# with key permissions that let it only write its stream and the answers and only read the commands.
ACL_COMMANDS_TAKING = "-@all +xadd +select +xread +xrange +hset +expire"


def acl_keys_taking(stream: str) -> str:
    """The key permissions (Redis 7) of a companion that takes commands, for ``ACL SETUSER``."""
    return f"%W~{stream} %R~{stream}:commands %W~{stream}:results:*"


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
    commands: bool = True

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

        def switch(name: str, default: bool) -> bool:
            raw = text(name, "").lower()
            if not raw:
                return default
            if raw in ("on", "1", "true", "yes"):
                return True
            if raw in ("off", "0", "false", "no"):
                return False
            raise SettingsError(f"{name} must be on or off, got {raw!r}")

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
            commands=switch("USERMETRICS_NAT_COMMANDS", True),
        )
