"""The keys of one alert rule and of one source entry (sync): each one's default, cast and meaning.

Like ``defaults``, the one home of each entry key's default and meaning: ``build`` checks an alert
rule against ``ALERT_RULE``, and the docs' tables of an entry's keys are generated from these.
"""

from __future__ import annotations

from typing import Any

from usermetrics.nat import DEFAULT_MAX_RESPONSE_BYTES
from usermetrics.windows import WINDOWS

from . import casts
from .defaults import Setting, defaults_of

# One entry of ALERTS["RULES"]: what a key may say, and what it says when left out.
ALERT_RULE: dict[str, Setting] = {
    "NAME": Setting(None, casts.text, "Required. The rule's unique name, as the admin and notifications show it."),
    "KIND": Setting(
        None,
        casts.text,
        "Required. `source_down`, `source_stale`, `user_stuck`, `user_erroring`, `user_rising`, `user_latency_p95`, "
        "`user_saturated`, `users_total`, `users_in_flight`, `user_cost`, `user_tokens` or `fleet_cost_per_hour`.",
    ),
    "ENABLED": Setting(True, casts.on_off, "Evaluate the rule."),
    "SEVERITY": Setting("warning", casts.text, "`info`, `warning` or `critical`."),
    "THRESHOLD": Setting(
        None,
        casts.optional(casts.number),
        "Counts: users or requests; `source_stale`: seconds since the last good answer; `user_latency_p95`: ms; "
        "`user_cost` and `fleet_cost_per_hour`: the price table's currency; `user_tokens`: tokens.",
    ),
    "CLEAR_THRESHOLD": Setting(
        None, casts.optional(casts.number), "Counts: resolve at or below this (`None`: 90% of `THRESHOLD`)."
    ),
    "WINDOW": Setting(
        "1h",
        casts.choice(*WINDOWS),
        "`user_cost`, `user_tokens`: the window a user's cost or tokens are summed over (`5m` ... `7d`).",
    ),
    "FOR": Setting(0.0, casts.number, "Seconds the condition must hold before the rule fires."),
    "CLEAR_FOR": Setting(30.0, casts.number, "Seconds it must stay clear before the rule resolves."),
    "REMIND_EVERY": Setting(3600.0, casts.number, "Seconds between reminders while firing (`0`: none)."),
}

# One entry of SOURCES. usermetrics.nat.source_entry_parse reads it; these are its words for the docs.
SOURCE_ENTRY: dict[str, Setting] = {
    "NAME": Setting(
        None, casts.text, "Required. Unique name, shown with the source's health and in each user's per-source records."
    ),
    "URL": Setting(
        None,
        casts.text,
        "Required. A NAT server's base URL (usermetrics reads `<URL>/monitor/users`), or the Redis URL "
        "(`redis://`, `rediss://`, `unix://`) where a NAT deployment's companions report (see the NAT companion page).",
    ),
    "TIMEOUT": Setting(None, casts.optional(casts.number), "Seconds for one fetch (connect, headers and body)."),
    "HEADERS": Setting(
        {},
        casts.as_is,
        'Extra request headers, e.g. `{"Authorization": "Bearer ..."}` for a NAT behind an authenticating proxy '
        "(never logged or shown).",
    ),
    "TIMEZONE": Setting(
        None, casts.text, "IANA zone of the NAT host (`None`: this host's): NAT's timestamps are naive local time."
    ),
    "PER_USER_WORKFLOW_TIMEOUT": Setting(
        None,
        casts.optional(casts.number),
        "The server's `general.per_user_workflow_timeout` in seconds, to say when an idle user will be evicted.",
    ),
    "MAX_RESPONSE_BYTES": Setting(
        DEFAULT_MAX_RESPONSE_BYTES,
        casts.integer,
        "A larger response is refused (reading stops at the cap); for a companion stream, a larger report is skipped.",
    ),
    "STREAM": Setting(
        None, casts.text, "A companion stream's key (`None`: `usermetrics:nat:<DEPLOYMENT>`, the companions' default)."
    ),
    "DEPLOYMENT": Setting(
        None,
        casts.text,
        "The NAT deployment a companion stream reports (`None`: the source's NAME); others are skipped.",
    ),
}

ALERT_RULE_DEFAULTS: dict[str, Any] = defaults_of(ALERT_RULE)
