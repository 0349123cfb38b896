"""The docs' generated tables (sync): every key, variable, rule and contract of the code is in them."""

from __future__ import annotations

import importlib.util
import json
import tomllib

import pytest

from tests.support.machine import ROOT
from usermetrics.conf import ALERT_RULE, DEFAULTS, SETTINGS, SOURCE_ENTRY, leaves


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("usermetrics_mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]]


def test_docs_settings_table_has_every_key_its_variable_and_meaning(hooks):
    variables = {tuple(path): name for name, path in hooks.settings_tables()["USERMETRICS_ENV"].items()}
    rows = {row[0].strip("`"): row for row in _rows(hooks.usermetrics_settings_table())}
    assert set(rows) == {".".join(path) for path, _ in leaves(SETTINGS)}
    for path, leaf in leaves(SETTINGS):
        _, variable, default, meaning = rows[".".join(path)]
        assert variable == (f"`{variables[path]}`" if path in variables else "")
        assert meaning == leaf.meaning.replace("|", "\\|")
        if path != ("ALERTS", "RULES"):  # the rules have a table of their own
            literal = json.dumps(leaf.default) if isinstance(leaf.default, str) else repr(leaf.default)
            assert default.startswith(f"`{literal}`"), path
    assert rows["FEED_MAX_FRAME_BYTES"][2] == "`524288` (512 KiB)"
    assert rows["HISTORY.RAW_RETENTION_DAYS"][1:3] == ["`USERMETRICS_HISTORY_RAW_DAYS`", "`7.0`"]


def test_docs_site_table_lists_every_django_level_variable(hooks):
    site = hooks.settings_tables()["SITE_ENV"]
    rows = {row[0].strip("`"): row for row in _rows(hooks.site_env_table())}
    assert set(rows) == set(site) and {"SECRET_KEY", "DATABASE_URL", "USERMETRICS_HTTPS"} <= set(rows)
    assert rows["USERMETRICS_LOGIN_FAILURE_LIMIT"][1] == "`5`" and rows["SECRET_KEY"][1] == "unset"


def test_docs_entry_and_rule_tables_follow_conf(hooks):
    assert [row[0].strip("`") for row in _rows(hooks.source_entry_table())] == list(SOURCE_ENTRY)
    assert [row[0].strip("`") for row in _rows(hooks.alert_rule_keys_table())] == list(ALERT_RULE)
    rules = _rows(hooks.alert_rules_table())
    assert [row[0].strip("`") for row in rules] == [rule["NAME"] for rule in DEFAULTS["ALERTS"]["RULES"]]
    assert rules[0] == ["`source-down`", "`source_down`", "yes", "critical", "—", "60 s", "30 s", "1 h"]


def test_docs_contract_list_names_every_import_linter_contract(hooks):
    listed = hooks.import_contracts_list()
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(listed.splitlines()) == len(contracts)
    for contract in contracts:
        assert f"**{contract['name']}**" in listed


def test_docs_markers_are_replaced_and_an_unknown_one_fails_the_build(hooks):
    page = hooks.render("before\n\n<!-- generated: alert-rules -->\n\nafter")
    assert "<!-- generated" not in page and "| `users-in-flight` |" in page
    with pytest.raises(hooks.PluginError, match="settings-tabel"):
        hooks.render("<!-- generated: settings-tabel -->")
    for page in (ROOT / "docs").glob("*.md"):
        assert "<!-- generated" not in hooks.render(page.read_text()), page
