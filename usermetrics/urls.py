"""URL routes of the usermetrics app (sync module)."""

from django.urls import path, register_converter

from usermetrics import api
from usermetrics.converters import UserIdConverter

register_converter(UserIdConverter, "userid")

app_name = "usermetrics"

urlpatterns = [
    path("monitor/users", api.monitor_users, name="monitor-users"),
    path("api/users/<userid:user_id>", api.user_detail, name="api-user"),
    path("api/status", api.status, name="api-status"),
]
