"""URL routes of the usermetrics app (sync module)."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from usermetrics import views
from usermetrics.api import openapi, prometheus
from usermetrics.converters import converter_register

converter_register()

app_name = "usermetrics"

urlpatterns = [
    path("", views.user_list, name="user-list"),
    path("users/<userid:user_id>/", views.user_detail, name="user-detail"),
    path("users/<userid:user_id>/actions/<str:action>", views.user_action, name="user-action"),
    path("sources/", views.sources_page, name="sources"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/test", views.alerts_test, name="alerts-test"),
    # Browsers ask for /favicon.ico on every page; answer instead of logging a 404 each time.
    path("favicon.ico", RedirectView.as_view(url=static("usermetrics/img/favicon.svg"), permanent=True)),
    # The JSON API: django-ninja operations over the views (api/openapi.py), and their schema.
    *openapi.urlpatterns(),
    path("api/openapi.json", openapi.openapi_json, name="api-openapi"),
    path("api/docs/", views.api_docs, name="api-docs"),
    path("metrics", prometheus.metrics, name="metrics"),
]
