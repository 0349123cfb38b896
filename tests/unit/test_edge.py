"""ASGI wrappers in front of Django: ids quoted with %2F route as one segment; nosniff on every response."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

import pytest
from channels.testing import ApplicationCommunicator
from django.core.asgi import get_asgi_application

from tests.support.factories import StaticSource, usage
from usermetrics.edge import NoSniff, RawPathSlashes, path_from_raw


@pytest.mark.parametrize(
    "raw, path",
    [
        (b"/users/a%2Fb%2Fc/", "/users/a~2Fb~2Fc/"),
        (b"/api/users/a%2fb/history", "/api/users/a~2Fb/history"),
        # Decoded whole, the segment is one id, written as the converter does: ~ and a leading . escaped.
        (b"/api/users/..%2F~x%20y", "/api/users/~2E.~2F~7Ex y"),
        (b"/api/users/%2F", "/api/users/~2F"),
        (b"/api/users/%E3%83%A6%2F%25", "/api/users/\u30e6~2F%"),
    ],
)
def test_edge_path_from_raw_rewrites_segments_with_encoded_slashes(raw, path):
    assert path_from_raw(raw) == path


@pytest.mark.parametrize("raw", [b"/users/a~2Fb/", b"/api/status", b"/users/100%25/"])
def test_edge_path_from_raw_leaves_other_paths_to_the_server(raw):
    assert path_from_raw(raw) is None


async def _get(app: Any, raw_path: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes], bytes]:
    """One GET through ``app`` with the scope Daphne builds: ``path`` decoded, ``raw_path`` as sent."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return start["status"], dict(start["headers"]), body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("user_id", ["a/b/c", "/x/", "../x"])
async def test_edge_ids_quoted_the_standard_way_open_pages_and_api(install_service, staff_client, api_tokens, user_id):
    await install_service([StaticSource("static", [usage(user_id), usage("other")])], interval=3600)
    app = RawPathSlashes(get_asgi_application())
    raw = quote(user_id, safe="").encode()  # what any HTTP client's quoting makes of it
    assert b"%2F" in raw
    cookie = [(b"cookie", f"sessionid={staff_client.cookies['sessionid'].value}".encode())]
    status, _, body = await _get(app, b"/users/" + raw + b"/", cookie)
    assert status == 200
    assert (
        json.loads(body.split(b'id="um-config" type="application/json">')[1].split(b"</script>")[0])["user_id"]
        == user_id
    )
    bearer = [(b"authorization", f"Bearer {api_tokens[0]}".encode())]
    status, _, body = await _get(app, b"/api/users/" + raw, bearer)
    assert status == 200 and json.loads(body)["user_id"] == user_id


async def test_edge_nosniff_is_added_once():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/css")]})
        await send({"type": "http.response.body", "body": b"a{}"})

    _, headers, body = await _get(NoSniff(app), b"/static/x.css", [])
    assert headers[b"x-content-type-options"] == b"nosniff" and body == b"a{}"

    async def own(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Content-Type-Options", b"nosniff")]})
        await send({"type": "http.response.body", "body": b""})

    _, headers, _ = await _get(NoSniff(own), b"/", [])
    assert list(headers) == [b"X-Content-Type-Options"]
