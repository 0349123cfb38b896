"""Root URL configuration (sync module): the admin and the usermetrics app."""

from django.contrib import admin
from django.urls import include, path

# The admin's chrome frames the dashboard pages too: name it after the dashboard.
admin.site.site_header = "usermetrics"
admin.site.site_title = "usermetrics"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("usermetrics.urls")),
]
