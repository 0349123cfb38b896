"""Scale-out backends: the Redis channel layer and PostgreSQL, when REDIS_URL / DATABASE_URL name them."""

from __future__ import annotations

import uuid

import pytest
from channels.layers import get_channel_layer
from django.db import connection


@pytest.mark.redis
async def test_backends_redis_channel_layer_round_trip():
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = await layer.new_channel()
    group = f"usermetrics.test-{uuid.uuid4().hex}"
    await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "metrics.update", "text": '{"seq": 1}'})
    message = await layer.receive(channel)
    assert message == {"type": "metrics.update", "text": '{"seq": 1}'}
    await layer.group_discard(group, channel)
    await layer.flush()


@pytest.mark.postgres
@pytest.mark.django_db
def test_backends_postgres_is_the_database(django_user_model):
    assert connection.vendor == "postgresql"
    django_user_model.objects.create_user(username="pg-user", password="pw-123456")
    assert django_user_model.objects.filter(username="pg-user").exists()
