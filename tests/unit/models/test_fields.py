"""The ORM's own fields: user ids stored as any string (NUL too) and named by their public path in migrations."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string

from usermetrics.models import UserIdField, db_text, db_text_loaded


def test_models_user_id_field_is_written_into_migrations_by_its_public_path():
    # The class lives in usermetrics/models/fields.py; migrations (0005 and any later one) import
    # usermetrics.models.UserIdField, which the package re-exports, so the module can move again.
    _name, path, _args, kwargs = UserIdField("user id", blank=True).deconstruct()
    assert path == "usermetrics.models.UserIdField"
    assert import_string(path) is UserIdField
    assert kwargs == {"verbose_name": "user id", "blank": True}


@pytest.mark.parametrize("user_id", ["nul\x00", "\x00", "\uffff", "\uffff\ufffe", "a\uffff\x00\uffff\ufffeb", "plain"])
def test_models_db_text_round_trips(user_id):
    stored = db_text(user_id)
    assert "\x00" not in stored
    assert db_text_loaded(stored) == user_id
    assert (stored == user_id) == (not {"\x00", "\uffff"} & set(user_id))  # plain ids are stored as they are
