"""The ORM package: its models agree with the migrations, and migrations name its field by the public path."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils.module_loading import import_string

from usermetrics.models import UserIdField


@pytest.mark.django_db
def test_models_need_no_new_migration():
    out = io.StringIO()
    # --check exits non-zero (SystemExit) when a model differs from what the migrations build.
    call_command("makemigrations", "usermetrics", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_models_user_id_field_is_written_into_migrations_by_its_public_path():
    # The class lives in usermetrics/models/fields.py; migrations (0005 and any later one) import
    # usermetrics.models.UserIdField, which the package re-exports, so the module can move again.
    _name, path, _args, kwargs = UserIdField("user id", blank=True).deconstruct()
    assert path == "usermetrics.models.UserIdField"
    assert import_string(path) is UserIdField
    assert kwargs == {"verbose_name": "user id", "blank": True}
