"""Every USERMETRICS key (sync): its default, how a value is read, and what it means, in one record per key.

This is the one home of each default and its meaning: ``get_config()`` merges the settings over
``DEFAULTS`` (derived from ``SETTINGS``), and the docs' settings table is generated from the same
records at build time (``scripts/mkdocs_hooks.py``), so the table cannot drift from the code. The
records of one entry of a list-valued key (an alert rule, a source) are in ``entries``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usermetrics.windows import WINDOWS

from . import casts
from .casts import Cast


@dataclass(frozen=True)
class Setting:
    """One key: its default, the cast that reads a value (typed, or the environment's string), its meaning."""

    default: Any
    cast: Cast
    meaning: str


SETTINGS: dict[str, Setting | dict[str, Setting]] = {
    "REFRESH_INTERVAL": Setting(2.0, casts.number, "Seconds between two refreshes of every source by the producer."),
    "SOURCE_TIMEOUT": Setting(
        5.0,
        casts.number,
        "Seconds one source may take to answer before its last good data is marked stale (a source's own "
        "`TIMEOUT` wins).",
    ),
    "SOURCE_DOWN_AFTER": Setting(
        30.0, casts.number, "Seconds a source may keep failing as `stale` (a blip) before it is called `down`."
    ),
    "SOURCES": Setting(
        [],
        casts.as_is,
        "NAT servers to poll: a list of dicts (below), or the string form "
        "`name=http://host:port,name2=http://host2:port` (a bare URL is named by its `host:port`). "
        "With any, the demo is off unless `DEMO.ENABLED` asks for it.",
    ),
    "API_TOKENS": Setting([], casts.strings, "Bearer tokens accepted by the JSON API (compared in constant time)."),
    "ACTIONS_TOKENS": Setting(
        [],
        casts.strings,
        "Bearer tokens that may also act on users (evict, hold, release) through the API; an API token not listed "
        "here may only read (see the Actions page).",
    ),
    "ACTIONS_TIMEOUT": Setting(
        5.0,
        casts.number,
        "Seconds an action waits for the NAT workers' answers (above 0, at most 120); a worker that has not answered "
        "by then is reported `no answer`, and the command expires (a worker reading it later does not carry it out).",
    ),
    "PRICES": Setting(
        {},
        casts.as_is,
        "What tokens cost, per model (the name NAT's LLM steps carry) and per million tokens: "
        '`{"gpt-4o": {"prompt": 2.5, "completion": 10, "cached": 1.25}}` (JSON in the environment; `cached` '
        "defaults to `prompt`). Prices set in the admin win over these. A model with no price shows its tokens "
        'and "no price".',
    ),
    "CURRENCY": Setting(
        "USD", casts.text, "The price table's one currency (every price is in it: costs of two currencies never add)."
    ),
    "DEMO": {
        "ENABLED": Setting(
            None,
            casts.optional(casts.on_off),
            "Run the built-in demo workload as a source (`None`: on unless `SOURCES` lists a NAT server).",
        ),
        "USERS": Setting(40, casts.integer, "Users of the demo workload."),
        "SEED": Setting(0, casts.integer, "Seed of the demo's traffic: the same seed gives the same traffic."),
        "TIMEOUT": Setting(
            120.0,
            casts.number,
            "Per-user workflow timeout of the demo's session manager, in seconds: idle users are evicted after it, "
            "like NAT's `per_user_workflow_timeout`.",
        ),
        "CLEANUP_INTERVAL": Setting(
            10.0, casts.number, "Seconds between two eviction passes of the demo's session manager."
        ),
        "EXTRA_USERS": Setting(
            [],
            casts.strings,
            "Extra user ids the demo also drives, busy from the start, e.g. `a/b,<b>x</b>` to see odd ids in the "
            "pages (in the comma-separated form ids cannot contain commas).",
        ),
    },
    "FEED_MAX_FRAME_BYTES": Setting(
        512 * 1024,
        casts.integer,
        "Largest websocket frame the live feed sends: a page that would not fit is shrunk (Daphne refuses frames "
        "over its `--websocket-max-message-size`, 1 MiB by default).",
    ),
    "FEED_MAX_UNSENT_BYTES": Setting(
        4 * 1024 * 1024,
        casts.integer,
        "Bytes a websocket may leave unsent in the server (a client that stops reading) before it is closed with "
        "`4008`: room for several whole frames on a slow link, never unbounded.",
    ),
    "HISTORY": {
        "ENABLED": Setting(
            True, casts.on_off, "Record history (per-user samples, totals, lives, source health) into the database."
        ),
        "SAMPLE_INTERVAL": Setting(
            15.0,
            casts.number,
            "Seconds: a user's counters are written at most this often (a new life or an ended user at once).",
        ),
        "RAW_RETENTION_DAYS": Setting(7.0, casts.number, "Days raw samples, totals and source health are kept."),
        "ROLLUP_RETENTION_DAYS": Setting(90.0, casts.number, "Days hourly roll-ups and ended users are kept."),
        "MAINTENANCE_INTERVAL": Setting(300.0, casts.number, "Seconds between two roll-up and prune passes."),
        "BATCH_SIZE": Setting(1000, casts.integer, "Rows per `INSERT`."),
    },
    "FLAGS": {
        "IDLE_AFTER": Setting(60.0, casts.number, "`idle`: nothing in flight and no activity for this many seconds."),
        "STUCK_AFTER": Setting(
            300.0, casts.number, "`stuck`: requests in flight but no activity for longer than this many seconds."
        ),
        "RISING_MIN": Setting(
            3,
            casts.integer,
            "`rising`: the exit stack, or functions + groups, grew by at least this over `WINDOW` (not released).",
        ),
        "ERROR_RATE": Setting(
            0.2, casts.number, "`erroring`: at least this share of the requests in `WINDOW` failed ..."
        ),
        "ERROR_MIN_REQUESTS": Setting(
            5, casts.integer, "... counted only with at least this many requests in `WINDOW`."
        ),
        "WINDOW": Setting("1h", casts.choice(*WINDOWS), "The window that `rising` and `erroring` look at."),
    },
    "PRODUCER": Setting(
        "embedded",
        casts.choice("embedded", "external"),
        "`embedded`: this Daphne starts its own producer (a child process, `manage.py runmonitor --parent SOCKET`); "
        "`external`: serve only what a `manage.py runmonitor` publishes (needs `REDIS_URL`).",
    ),
    "REDIS_URL": Setting(
        "",
        casts.text,
        "Redis, e.g. `redis://127.0.0.1:6379/0`: the channel layer, the bus, the lease and the views directory of "
        "several processes; unset, everything stays in this process (in-memory channel layer).",
    ),
    "REDIS_PREFIX": Setting(
        "usermetrics",
        casts.text,
        "Prefix of every Redis key, pub/sub channel, lease and channel-layer name, so deployments can share a Redis.",
    ),
    "PRODUCER_TIMEOUT": Setting(
        None,
        casts.optional(casts.number),
        "Seconds without a new board before a face says no producer is publishing (`None`: 3 x `REFRESH_INTERVAL`).",
    ),
    "METRICS_TOKENS": Setting(
        [],
        casts.strings,
        "Bearer tokens for `GET /metrics` (the API tokens work too); without any, `/metrics` answers 403.",
    ),
    "METRICS_ALLOW": Setting(
        [],
        casts.strings,
        "Opt-in: addresses or networks (CIDR) that may scrape `/metrics` without a token (never behind a local "
        "proxy: there every client is loopback).",
    ),
    "ALERTS": {
        "ENABLED": Setting(True, casts.on_off, "Evaluate the alert rules after each refresh (in the producer)."),
        "URLS": Setting(
            [],
            casts.strings,
            "The default routes: Apprise URLs (comma-separated in the environment; a list when a URL holds a comma). "
            "Secrets in them are never logged or shown.",
        ),
        "GROUP_NAMES": Setting(
            5, casts.integer, "A grouped notification names this many users, then says how many more."
        ),
        "RETRY_MIN": Setting(
            5.0, casts.number, "Seconds before the first retry of a failed delivery; doubles each time ..."
        ),
        "RETRY_MAX": Setting(600.0, casts.number, "... up to this many seconds."),
        "GIVE_UP_AFTER": Setting(
            86400.0, casts.number, "Seconds after which a delivery still failing is marked failed."
        ),
        "DASHBOARD_URL": Setting(
            "",
            casts.text,
            "This dashboard's address, e.g. `https://monitor.example.com`: notifications link to its alerts page.",
        ),
        "RULES": Setting(
            [
                {"NAME": "source-down", "KIND": "source_down", "SEVERITY": "critical", "FOR": 60.0},
                {"NAME": "source-stale", "KIND": "source_stale", "SEVERITY": "warning", "THRESHOLD": 300.0},
                {"NAME": "user-stuck", "KIND": "user_stuck", "SEVERITY": "warning"},
                {"NAME": "user-erroring", "KIND": "user_erroring", "ENABLED": False, "FOR": 300.0},
                {"NAME": "user-rising", "KIND": "user_rising", "ENABLED": False, "FOR": 600.0},
                # NAT companions' figures (users of other sources never fire them).
                {"NAME": "user-saturated", "KIND": "user_saturated", "SEVERITY": "warning", "FOR": 120.0},
                {
                    "NAME": "user-latency-p95",
                    "KIND": "user_latency_p95",
                    "ENABLED": False,
                    "THRESHOLD": 10000,
                    "FOR": 300.0,
                },
                {
                    "NAME": "users-total",
                    "KIND": "users_total",
                    "ENABLED": False,
                    "SEVERITY": "info",
                    "THRESHOLD": 10000,
                },
                {
                    "NAME": "users-in-flight",
                    "KIND": "users_in_flight",
                    "ENABLED": False,
                    "THRESHOLD": 1000,
                    "FOR": 120.0,
                },
                # Budgets, from the tokens the history records and their cost when used.
                {"NAME": "user-cost", "KIND": "user_cost", "ENABLED": False, "THRESHOLD": 10.0, "WINDOW": "24h"},
                {"NAME": "user-tokens", "KIND": "user_tokens", "ENABLED": False, "THRESHOLD": 1000000, "WINDOW": "1h"},
                {"NAME": "fleet-cost-per-hour", "KIND": "fleet_cost_per_hour", "ENABLED": False, "THRESHOLD": 50.0},
            ],
            casts.as_is,
            "The rules a new database starts with: its first migration writes them, then the admin edits them.",
        ),
    },
}


def defaults_of(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The plain defaults of a tree of settings, nested as the tree is."""
    return {key: defaults_of(node) if isinstance(node, Mapping) else node.default for key, node in tree.items()}


def leaves(tree: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Setting]]:
    """Every key of a tree of settings with its path, in order: ``(("HISTORY", "ENABLED"), Setting(...))``."""
    found: list[tuple[tuple[str, ...], Setting]] = []
    for key, node in tree.items():
        if isinstance(node, Mapping):
            found.extend(((key, *path), leaf) for path, leaf in leaves(node))
        else:
            found.append(((key,), node))
    return found


DEFAULTS: dict[str, Any] = defaults_of(SETTINGS)
