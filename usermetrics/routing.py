"""Websocket URL routes of the live feed (sync module)."""

from django.urls import path

import usermetrics.urls  # noqa: F401 - registers the <userid:> converter once, for both URL tables
from usermetrics import consumers

websocket_urlpatterns = [
    path("ws/monitor/", consumers.MonitorConsumer.as_asgi(), name="ws-monitor"),
    path("ws/monitor/users/<userid:user_id>/", consumers.UserConsumer.as_asgi(), name="ws-user"),
]
