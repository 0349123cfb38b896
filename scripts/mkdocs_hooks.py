"""MkDocs hooks (sync): the docs' generated tables, rendered at build time from the code they describe.

A page asks for a table with a marker line such as ``<!-- generated: usermetrics-settings -->``;
``on_page_markdown`` replaces it. The tables come from ``usermetrics.conf`` (every key's default and
meaning), from the NAT companion's variables and latency buckets (``usermetrics_nat``), from the two
environment tables of ``monitor_site/settings.py`` (read with ``ast``, without
running the settings) and from ``pyproject.toml``'s import-linter contracts, so they cannot drift from
them. An unknown marker fails the build.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # mkdocs loads this file by path; the app's packages live at the root
    sys.path.insert(0, str(ROOT))

from usermetrics_nat.histogram import BOUNDS_MS  # noqa: E402
from usermetrics_nat.settings import ACL_COMMANDS as COMPANION_ACL  # noqa: E402
from usermetrics_nat.settings import ACL_COMMANDS_TAKING, VARIABLES, acl_keys_taking  # noqa: E402

from usermetrics.conf import ALERT_RULE, ALERT_RULE_DEFAULTS, DEFAULTS, SETTINGS, SOURCE_ENTRY, leaves  # noqa: E402
from usermetrics.nat_stream import ACL_COMMANDS as READER_ACL  # noqa: E402

MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def settings_tables(path: Path = ROOT / "monitor_site" / "settings.py") -> dict[str, Any]:
    """``SITE_ENV`` and ``USERMETRICS_ENV`` of the settings file, as the literals they are written as."""
    tables: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in ("SITE_ENV", "USERMETRICS_ENV") and node.value is not None:
            tables[target.id] = ast.literal_eval(node.value)
    return tables


def _cell(text: str) -> str:
    """Text that stays in its Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(key: str, value: Any) -> str:
    """A default as the docs show it: Python's literal, with the size in KiB/MiB for byte counts."""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return f"{len(value)} rules, [below](alerts.md#the-rules-of-a-fresh-database)"
    literal = json.dumps(value) if isinstance(value, str) else repr(value)
    shown = f"`{literal}`"
    if key.endswith("_BYTES") and isinstance(value, int):
        size, unit = (value // 2**20, "MiB") if value % 2**20 == 0 else (value // 2**10, "KiB")
        shown += f" ({size} {unit})"
    return shown


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def site_env_table() -> str:
    """The Django-level environment variables: name, default, meaning."""
    rows = [
        [f"`{name}`", f"`{default}`" if default else "unset", meaning]
        for name, (default, meaning) in settings_tables()["SITE_ENV"].items()
    ]
    return _table(["variable", "default", "meaning"], rows)


def usermetrics_settings_table() -> str:
    """Every USERMETRICS key: the variable that sets it, its default and its meaning."""
    variables = {tuple(path): name for name, path in settings_tables()["USERMETRICS_ENV"].items()}
    known = {path for path, _ in leaves(SETTINGS)}
    unknown = sorted(name for path, name in variables.items() if path not in known)
    if unknown:
        raise PluginError(f"settings.py's USERMETRICS_ENV names keys usermetrics.conf does not have: {unknown}")
    rows = [
        [
            f"`{'.'.join(path)}`",
            f"`{variables[path]}`" if path in variables else "",
            _shown(path[-1], leaf.default),
            leaf.meaning,
        ]
        for path, leaf in leaves(SETTINGS)
    ]
    return _table(["key", "environment variable", "default", "meaning"], rows)


def source_entry_table() -> str:
    """The keys of one ``SOURCES`` entry."""
    shown = {
        "NAME": "required",
        "URL": "required",
        "TIMEOUT": "`SOURCE_TIMEOUT`",
        "TIMEZONE": "this host's zone",
        "PER_USER_WORKFLOW_TIMEOUT": "unknown",
    }
    rows = [
        [f"`{key}`", shown.get(key) or _shown(key, leaf.default), leaf.meaning] for key, leaf in SOURCE_ENTRY.items()
    ]
    return _table(["key", "default", "meaning"], rows)


def alert_rule_keys_table() -> str:
    """The keys of one ``ALERTS.RULES`` entry."""
    rows = [
        [f"`{key}`", "required" if key in ("NAME", "KIND") else _shown(key, leaf.default), leaf.meaning]
        for key, leaf in ALERT_RULE.items()
    ]
    return _table(["key", "default", "meaning"], rows)


def _seconds(value: float | None) -> str:
    if not value:
        return "0"
    return f"{value / 3600:g} h" if value % 3600 == 0 else f"{value:g} s"


def alert_rules_table() -> str:
    """The rules a fresh database starts with (``ALERTS.RULES``'s default)."""
    rows = []
    for entry in DEFAULTS["ALERTS"]["RULES"]:
        rule = {**ALERT_RULE_DEFAULTS, **entry}
        threshold = rule["THRESHOLD"]
        shown = "—" if threshold is None else f"{threshold:,g}" + (" s" if rule["KIND"] == "source_stale" else "")
        rows.append(
            [
                f"`{rule['NAME']}`",
                f"`{rule['KIND']}`",
                "yes" if rule["ENABLED"] else "no",
                rule["SEVERITY"],
                shown,
                _seconds(rule["FOR"]) + (" (the flag waits `STUCK_AFTER`)" if rule["KIND"] == "user_stuck" else ""),
                _seconds(rule["CLEAR_FOR"]),
                _seconds(rule["REMIND_EVERY"]),
            ]
        )
    return _table(["rule", "kind", "on", "severity", "threshold", "for", "clear for", "remind every"], rows)


def import_contracts_list(path: Path = ROOT / "pyproject.toml") -> str:
    """The import-linter contracts of ``pyproject.toml``, each with what it holds."""
    config = tomllib.loads(path.read_text())["tool"]["importlinter"]
    items = []
    for contract in config["contracts"]:
        kind = contract["type"]
        if kind == "layers":
            layers = " > ".join(f"`{layer}`" for layer in contract["layers"])
            detail = f"layers of `{', '.join(contract['containers'])}`, top to bottom: {layers}"
        elif kind == "forbidden":
            sources = ", ".join(f"`{m}`" for m in contract["source_modules"])
            forbidden = ", ".join(f"`{m}`" for m in contract["forbidden_modules"])
            detail = f"{sources} may not import {forbidden}"
            if contract.get("allow_indirect_imports"):
                detail += " (directly; indirect imports through the one door are allowed)"
        elif kind == "acyclic_siblings":
            detail = f"no import cycle among the siblings of any package under {', '.join(contract['ancestors'])}"
        else:
            detail = f"type `{kind}`"
        items.append(f"- **{contract['name']}** — {detail}.")
    return "\n".join(items)


def companion_variables_table() -> str:
    """The NAT companion's environment variables (``usermetrics_nat.settings.VARIABLES``)."""
    rows = [[f"`{v.name}`", f"`{v.default}`" if v.default else "(unset)", _cell(v.meaning)] for v in VARIABLES]
    return _table(["variable", "default", "meaning"], rows)


def latency_buckets_list() -> str:
    """The latency histogram's bucket bounds (``usermetrics_nat.histogram.BOUNDS_MS``)."""
    bounds = ", ".join(f"{b:,g}" for b in BOUNDS_MS)
    return f"Upper bounds in ms, each inclusive: {bounds}; and one bucket above {BOUNDS_MS[-1]:,g} ms."


def companion_acl_block() -> str:
    """The Redis ACL users of a companion stream: the companions' (XADD only) and the producer's."""
    keys = "resetkeys ~usermetrics:nat:prod resetchannels"
    return "\n".join(
        [
            "```",
            "# the NAT companions: may only add entries to their stream",
            f"ACL SETUSER nat-companion on >COMPANION_PASSWORD {keys} {COMPANION_ACL}",
            "# or, for companions that also take usermetrics' commands (evict, hold): write the stream",
            "# and the answers, read the commands, nothing else",
            f"ACL SETUSER nat-companion on >COMPANION_PASSWORD resetkeys {acl_keys_taking('usermetrics:nat:prod')}"
            f" resetchannels {ACL_COMMANDS_TAKING}",
            "# usermetrics' producers: may only read that stream as a consumer group",
            f"ACL SETUSER usermetrics-reader on >READER_PASSWORD {keys} {READER_ACL}",
            "```",
        ]
    )


TABLES: dict[str, Callable[[], str]] = {
    "site-env": site_env_table,
    "usermetrics-settings": usermetrics_settings_table,
    "source-entry": source_entry_table,
    "alert-rule-keys": alert_rule_keys_table,
    "alert-rules": alert_rules_table,
    "import-contracts": import_contracts_list,
    "companion-variables": companion_variables_table,
    "latency-buckets": latency_buckets_list,
    "companion-acl": companion_acl_block,
}


def render(markdown: str) -> str:
    """``markdown`` with every marker replaced by its table; an unknown marker is an error."""

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise PluginError(f"Unknown generated table {name!r}; known: {', '.join(TABLES)}")
        return TABLES[name]()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: each page's Markdown before it is rendered."""
    return render(markdown)
