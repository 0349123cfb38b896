"""URL routes of the usermetrics app (sync module)."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from usermetrics import views
from usermetrics.api import export, history, live, prometheus
from usermetrics.converters import converter_register

converter_register()

app_name = "usermetrics"

urlpatterns = [
    path("", views.user_list, name="user-list"),
    path("users/<userid:user_id>/", views.user_detail, name="user-detail"),
    # Browsers ask for /favicon.ico on every page; answer instead of logging a 404 each time.
    path("favicon.ico", RedirectView.as_view(url=static("usermetrics/img/favicon.svg"), permanent=True)),
    path("monitor/users", live.monitor_users, name="monitor-users"),
    path("api/users/<userid:user_id>", live.user_detail, name="api-user"),
    path("api/status", live.status, name="api-status"),
    path("api/users/<userid:user_id>/history", history.user_history, name="api-user-history"),
    path(
        "api/users/<userid:user_id>/history.csv",
        export.export_user_history,
        {"fmt": "csv"},
        name="api-user-history-csv",
    ),
    path(
        "api/users/<userid:user_id>/history.json",
        export.export_user_history,
        {"fmt": "json"},
        name="api-user-history-json",
    ),
    path("api/overview/history", history.overview_history, name="api-overview-history"),
    path("api/sparklines", history.sparklines, name="api-sparklines"),
    path("api/list/window", history.users_window, name="api-users-window"),
    path("api/export/users.csv", export.export_users, {"fmt": "csv"}, name="api-export-users-csv"),
    path("api/export/users.json", export.export_users, {"fmt": "json"}, name="api-export-users-json"),
    path("metrics", prometheus.metrics, name="metrics"),
]
