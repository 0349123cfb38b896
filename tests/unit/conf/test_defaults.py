"""The settings' defaults: every key has a meaning and a default its own cast reads; source entries as NAT reads."""

from __future__ import annotations

from usermetrics.conf import ALERT_RULE, SETTINGS, SOURCE_ENTRY, leaves
from usermetrics.nat import SOURCE_KEYS, SourceEntry


def test_conf_every_key_has_a_meaning_and_a_default_its_cast_reads():
    for tree in (SETTINGS, ALERT_RULE, SOURCE_ENTRY):
        for path, leaf in leaves(tree):
            assert len(leaf.meaning) > 10 and leaf.meaning.endswith("."), path  # a sentence, for the docs' table
            if leaf.default is not None:
                leaf.cast(leaf.default, str(path))  # raises if a default is not what its own cast accepts


def test_conf_source_entry_words_cover_exactly_the_keys_nat_reads():
    assert set(SOURCE_ENTRY) == set(SOURCE_KEYS)
    assert SOURCE_ENTRY["MAX_RESPONSE_BYTES"].default == SourceEntry("a", "http://h").max_response_bytes
