"""Websocket guards (usermetrics.sockets): the own-origin rule, the request's scheme, Daphne's unsent bytes."""

from __future__ import annotations

import asyncio
import functools

import pytest

from usermetrics.sockets import SendBudget, daphne_protocol, origin_allowed, request_scheme, unsent_bytes

SERVED = {"host": "127.0.0.1:8000", "scheme": "http"}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("HTTP://127.0.0.1:8000", True),
        ("http://127.0.0.1:9999", False),  # another app on the same host
        ("http://127.0.0.1", False),  # port 80 is another origin
        ("https://127.0.0.1", False),
        ("https://127.0.0.1:8000", False),
        ("ws://127.0.0.1:8000", False),
        ("wss://127.0.0.1:8000", False),
        ("http://127.0.0.1:8000/", False),  # a URL, not an origin
        ("http://127.0.0.1:8000@evil.example", False),
        ("http://evil.example:8000", False),
        ("null", False),
        ("", False),
        (None, False),
        ("http://127.0.0.1:80000", False),
        ("http://127.0.0.1:8x00", False),
        ("http://\uff11\uff12\uff17.0.0.1:8000", False),  # full-width digits
    ],
)
def test_sockets_origin_must_be_scheme_host_and_port(origin, allowed, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    assert origin_allowed(origin, trusted=[], **SERVED) is allowed


def test_sockets_default_ports_are_the_same_origin(settings):
    settings.ALLOWED_HOSTS = ["dash.example.com"]
    assert origin_allowed("https://dash.example.com", host="dash.example.com:443", scheme="https")
    assert origin_allowed("https://dash.example.com:443", host="dash.example.com", scheme="https")
    assert not origin_allowed("http://dash.example.com", host="dash.example.com", scheme="https")


def test_sockets_host_header_must_be_allowed(settings):
    # A rebound DNS name: the page's origin matches the Host it sends, but that host is not ours.
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    assert not origin_allowed("http://rebound.evil.example:8000", host="rebound.evil.example:8000", scheme="http")
    assert not origin_allowed("http://127.0.0.1:8000", host=None, scheme="http")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://dash.example.com", True),
        ("https://dash.example.com:443", True),
        ("http://dash.example.com", False),
        ("https://a.corp.example", True),
        ("https://corp.example", True),  # as Django's CSRF check reads "*.": the domain and its subdomains
        ("http://a.corp.example", False),
        ("https://a.corp.example.evil", False),
    ],
)
def test_sockets_trusted_origins_are_accepted(origin, allowed, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    trusted = ["https://dash.example.com", "https://*.corp.example"]
    assert origin_allowed(origin, trusted=trusted, **SERVED) is allowed


def test_sockets_scheme_from_the_scope_or_the_trusted_proxy_header(settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    proxied = {"headers": [(b"x-forwarded-proto", b"https")]}
    assert request_scheme({"scheme": "wss"}) == "https"
    assert request_scheme({}) == "http"
    assert request_scheme(proxied) == "http"  # not trusted unless the settings say so
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert request_scheme(proxied) == "https"
    assert request_scheme({"headers": [(b"x-forwarded-proto", b"http")], "scheme": "wss"}) == "http"


class _Transport:
    """The attributes of Twisted's FileDescriptor that hold unsent bytes."""

    def __init__(self) -> None:
        self.dataBuffer = b"x" * 1000
        self.offset = 400
        self._tempDataBuffer = [b"y" * 50, b"z" * 70]
        self._tempDataLen = 120


class _Protocol:
    def __init__(self, transport: object) -> None:
        self.transport = transport

    def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
        raise AssertionError("not called here")


class _TLS:
    def __init__(self) -> None:
        self.transport = _Transport()
        self._appSendBuffer = [b"a" * 10]


def test_sockets_unsent_bytes_read_from_the_transport():
    assert unsent_bytes(_Protocol(_Transport())) == 600 + 120
    assert unsent_bytes(_Protocol(_TLS())) == 10 + 600 + 120
    assert unsent_bytes(_Protocol(None)) == 0


def test_sockets_a_frame_for_a_socket_that_is_closing_goes_nowhere(settings):
    # A frame handed to a socket whose client just went: Autobahn raises Disconnected on a closed
    # protocol; the budget's send drops it instead (the disconnect follows).
    sent: list[dict] = []

    class Protocol(_Protocol):
        STATE_CONNECTING, STATE_OPEN, STATE_CLOSING, STATE_CLOSED = 0, 1, 2, 3
        state = 1

    protocol = Protocol(_Transport())

    async def handle_reply(protocol: object, message: dict) -> None:
        if protocol.state == protocol.STATE_CLOSED:  # type: ignore[attr-defined]
            raise AssertionError("sent on a closed protocol")
        sent.append(message)

    async def app(scope: dict, receive: object, send: object) -> None:
        for state in (Protocol.STATE_OPEN, Protocol.STATE_CLOSING, Protocol.STATE_CLOSED):
            protocol.state = state
            await send({"type": "websocket.send", "text": str(state)})

    asyncio.run(SendBudget(app)({"type": "websocket"}, None, functools.partial(handle_reply, protocol)))
    assert [m["text"] for m in sent] == ["1"]


def test_sockets_daphne_protocol_only_behind_daphnes_send():
    async def handle_reply(protocol: object, message: dict) -> None:
        return None

    protocol = _Protocol(_Transport())
    assert daphne_protocol(functools.partial(handle_reply, protocol)) is protocol
    assert daphne_protocol(handle_reply) is None
    assert daphne_protocol(functools.partial(handle_reply, object())) is None
