"""Websocket URL routes of the live feed (sync module)."""

from django.urls import path, re_path

from usermetrics import consumers
from usermetrics.converters import converter_register

converter_register()

websocket_urlpatterns = [
    path("ws/monitor/", consumers.UserListConsumer.as_asgi(), name="ws-monitor"),
    path("ws/monitor/users/<userid:user_id>/", consumers.UserDetailConsumer.as_asgi(), name="ws-user"),
    # Last: every other path is refused at the handshake (Channels' URLRouter would raise, a 500).
    re_path(r"", consumers.NotFoundConsumer.as_asgi(), name="ws-not-found"),
]
