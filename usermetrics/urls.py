"""URL routes of the usermetrics app (sync module)."""

from django.templatetags.static import static
from django.urls import path, register_converter
from django.views.generic import RedirectView

from usermetrics import api, history_api, prometheus, views
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
    # History (issue 5): chart series, exports, Prometheus.
    path("api/users/<userid:user_id>/history", history_api.user_history, name="api-user-history"),
    path(
        "api/users/<userid:user_id>/history.csv",
        history_api.export_user_history,
        {"fmt": "csv"},
        name="api-user-history-csv",
    ),
    path(
        "api/users/<userid:user_id>/history.json",
        history_api.export_user_history,
        {"fmt": "json"},
        name="api-user-history-json",
    ),
    path("api/overview/history", history_api.overview_history, name="api-overview-history"),
    path("api/sparklines", history_api.sparklines, name="api-sparklines"),
    path("api/list/window", history_api.users_window, name="api-users-window"),
    path("api/export/users.csv", history_api.export_users, {"fmt": "csv"}, name="api-export-users-csv"),
    path("api/export/users.json", history_api.export_users, {"fmt": "json"}, name="api-export-users-json"),
    path("metrics", prometheus.metrics, name="metrics"),
]
