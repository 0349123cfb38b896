"""The ASGI fast path of /monitor/users: the same answer as Django's, only the headers every answer shares."""

from __future__ import annotations

import gzip

from channels.testing import HttpCommunicator

from monitor_site.asgi import application
from usermetrics.api.fast import MonitorUsersFastPath


async def _asgi(url: str, headers: dict[str, str]) -> dict:
    communicator = HttpCommunicator(
        application,
        "GET",
        url,
        headers=[(b"host", b"testserver"), *((k.encode(), v.encode()) for k, v in headers.items())],
    )
    return await communicator.get_response(timeout=10)


async def test_api_fast_path_answers_as_django_does(local, api_tokens):
    fast = application.app.application_mapping["http"]
    auth = {"authorization": f"Bearer {api_tokens[0]}"}
    by_django = await _asgi("/monitor/users", auth)  # the first of its host: Django answers, its headers kept
    served = fast.served
    by_fast = await _asgi("/monitor/users", auth)
    assert fast.served == served + 1
    assert by_fast["status"] == by_django["status"] == 200 and by_fast["body"] == by_django["body"]

    def same(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # Names are case-insensitive; the length is the body's (compared above), Date and Server Daphne's.
        return sorted((n.lower(), v) for n, v in headers if n.lower() not in {b"date", b"server", b"content-length"})

    assert same(by_fast["headers"]) == same(by_django["headers"])
    names = {name.lower() for name, _ in by_fast["headers"]}
    assert {b"content-security-policy", b"x-content-type-options", b"cache-control", b"etag"} <= names
    packed = await _asgi("/monitor/users", {**auth, "accept-encoding": "gzip"})
    assert gzip.decompress(packed["body"]) == by_django["body"]
    etag = {n.lower(): v for n, v in by_fast["headers"]}[b"etag"].decode()
    assert (await _asgi("/monitor/users", {**auth, "if-none-match": etag}))["status"] == 304
    # Whatever does not qualify goes to Django, which says why.
    assert (await _asgi("/monitor/users", {"authorization": "Bearer wrong"}))["status"] == 401
    assert (await _asgi("/monitor/users", {}))["status"] == 401
    assert fast.served == served + 3


async def test_api_fast_path_replays_only_the_headers_every_answer_shares(local, api_tokens):
    # Whatever else Django's first answer carried (a cookie, a header some middleware adds later)
    # belonged to that one answer: the fast path must never hand it to every token client.
    async def django(scope, receive, send) -> None:
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Cache-Control", b"max-age=0, no-cache, no-store, must-revalidate, private"),
            (b"X-Content-Type-Options", b"nosniff"),
            (b"Set-Cookie", b"sessionid=secret-of-the-first-client; HttpOnly"),
            (b"X-Added-Later", b"per-request"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    fast = MonitorUsersFastPath(django)
    auth = [(b"host", b"testserver"), (b"authorization", f"Bearer {api_tokens[0]}".encode())]
    await HttpCommunicator(fast, "GET", "/monitor/users", headers=auth).get_response(timeout=10)
    served = fast.served
    answer = await HttpCommunicator(fast, "GET", "/monitor/users", headers=auth).get_response(timeout=10)
    assert fast.served == served + 1 and answer["status"] == 200
    names = {name.lower() for name, _ in answer["headers"]}
    assert {b"content-type", b"cache-control", b"x-content-type-options", b"etag"} <= names
    assert b"set-cookie" not in names and b"x-added-later" not in names
