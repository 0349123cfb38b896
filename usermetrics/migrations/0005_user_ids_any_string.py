"""User ids of any length and content: lives are keyed by the id's SHA-256, ids stored as text with NUL escaped."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, models

import usermetrics.models


def fill_keys(apps: Any, schema_editor: Any) -> None:
    """Key every existing life by its user id (``models.user_key``; ids stored so far hold no NUL)."""
    life = apps.get_model("usermetrics", "UserLife")
    rows = []
    for pk, user_id in life.objects.values_list("pk", "user_id").iterator(chunk_size=5000):
        digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
        rows.append(life(pk=pk, user_key=digest))
        if len(rows) >= 1000:
            life.objects.bulk_update(rows, ["user_key"])
            rows = []
    life.objects.bulk_update(rows, ["user_key"])


class Migration(migrations.Migration):
    dependencies = [("usermetrics", "0004_alerts")]

    operations = [
        migrations.AddField(
            model_name="userlife",
            name="user_key",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="userlife", name="usermetrics_life_user_life"),
        migrations.AlterField(model_name="userlife", name="user_id", field=usermetrics.models.UserIdField()),
        migrations.AddConstraint(
            model_name="userlife",
            constraint=models.UniqueConstraint(fields=("user_key", "life"), name="usermetrics_life_key_life"),
        ),
        migrations.AlterField(
            model_name="silence",
            name="user_id",
            field=usermetrics.models.UserIdField(blank=True, default="", verbose_name="user id"),
        ),
        migrations.AlterField(
            model_name="incidentmember", name="subject", field=usermetrics.models.UserIdField(blank=True, default="")
        ),
    ]
