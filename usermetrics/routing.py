"""Websocket URL routes of the live feed (sync module)."""

from django.urls import path

from usermetrics import consumers
from usermetrics.converters import converter_register

converter_register()

websocket_urlpatterns = [
    path("ws/monitor/", consumers.MonitorConsumer.as_asgi(), name="ws-monitor"),
    path("ws/monitor/users/<userid:user_id>/", consumers.UserConsumer.as_asgi(), name="ws-user"),
]
