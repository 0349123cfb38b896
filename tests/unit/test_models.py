"""The ORM package: its models agree with the migrations."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_need_no_new_migration():
    out = io.StringIO()
    # --check exits non-zero (SystemExit) when a model differs from what the migrations build.
    call_command("makemigrations", "usermetrics", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
