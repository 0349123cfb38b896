"""The sources page and the API docs page: staff only, every source with its state, the docs vendored."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_api_docs_page_is_staff_only_and_vendored(async_client, staff_client):
    anonymous = await async_client.get("/api/docs/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    page = (await staff_client.get("/api/docs/")).content.decode()
    assert "usermetrics/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "usermetrics/js/apidocs.js" in page and 'data-schema-url="/api/openapi.json"' in page
    assert "https://" not in page.split("<body", 1)[1].split("</body>", 1)[0].replace("https://www.djangoproject", "")


async def test_views_sources_page_lists_every_source(source, staff_client):
    response = await staff_client.get("/sources/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<tr data-source="static">' in html and '<span class="um-badge" data-state="ok">ok</span>' in html
    assert '<td class="um-num" data-field="users">12</td>' in html
    assert '"sources_url": "/api/sources"' in html
    assert (await AsyncClient().get("/sources/")).status_code == 302
