"""Root URL configuration (sync module): the admin and the usermetrics app."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("usermetrics.urls")),
]
