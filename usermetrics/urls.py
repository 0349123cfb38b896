"""URL routes of the usermetrics app (sync module)."""

from django.templatetags.static import static
from django.urls import path, register_converter
from django.views.generic import RedirectView

from usermetrics import api, views
from usermetrics.converters import UserIdConverter

register_converter(UserIdConverter, "userid")

app_name = "usermetrics"

urlpatterns = [
    path("", views.user_list, name="user-list"),
    path("users/<userid:user_id>/", views.user_detail, name="user-detail"),
    # Browsers ask for /favicon.ico on every page; answer instead of logging a 404 each time.
    path("favicon.ico", RedirectView.as_view(url=static("usermetrics/img/favicon.svg"), permanent=True)),
    path("monitor/users", api.monitor_users, name="monitor-users"),
    path("api/users/<userid:user_id>", api.user_detail, name="api-user"),
    path("api/status", api.status, name="api-status"),
]
