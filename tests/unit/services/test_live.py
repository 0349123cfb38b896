"""The service layer's live door: the latest board, the producer's state, the status, the feed's registry."""

from __future__ import annotations

from datetime import datetime

from tests.support.factories import PYPROJECT_VERSION, ScriptedSource, record
from usermetrics import services, testing
from usermetrics.publish.face import face_get
from usermetrics.selection import ViewSpec
from usermetrics.sources import LocalSource


async def test_services_board_is_what_the_producer_published(install_service, manager):
    async with manager.session("alice"):
        pass
    async with manager.session("bob"):
        pass
    producer = await install_service([LocalSource("local", manager)])
    board = services.board_get()
    assert board is producer.board and board.ids == ["alice", "bob"] and len(board) == 2
    assert board.user("bob").user_id == "bob" and board.user("nobody") is None
    assert services.producer_state().publishing


def test_services_before_any_board_nobody_publishes(settings):
    previous = testing.face_install(testing.face_local())
    try:
        board = services.board_get()
        assert len(board) == 0 and board.seq == 0
        state = services.producer_state()
        assert not state.publishing and state.words == "No producer is publishing: none has published a board yet."
    finally:
        testing.face_install(previous)


async def test_services_status_shape(install_service, manager, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "REFRESH_INTERVAL": 3.0, "SOURCE_TIMEOUT": 1.5}
    await install_service([LocalSource("local", manager)])
    status = services.source_status()
    assert status["version"] == services.VERSION == PYPROJECT_VERSION
    assert status["refresh_interval"] == 3.0 and status["source_timeout"] == 1.5
    assert datetime.fromisoformat(status["last_refresh"]).tzinfo is not None
    assert status["producer"]["state"] == "ok" and status["producer"]["seq"] == status["seq"] == 1
    (source,) = status["sources"]
    assert source["name"] == "local" and source["kind"] == "local" and source["state"] == "ok"


async def test_services_status_reports_a_stale_source(install_service):
    flaky = ScriptedSource("flaky", [record("kept")], "hang")
    producer = await install_service([flaky, ScriptedSource("steady", [record("other")])], timeout=0.05)
    await producer.refresh()
    status = services.source_status()
    assert [s["state"] for s in status["sources"]] == ["stale", "ok"]
    assert status["sources"][0]["users_stale"] is True and status["sources"][0]["users"] == 1


async def test_services_feed_registry_moves_a_channel_between_views(install_service):
    await install_service([ScriptedSource("s", [record("a")])], interval=3600)
    first = services.feed_subscribe("chan-1", spec=ViewSpec())
    second = services.feed_subscribe("chan-1", spec=ViewSpec(sort="user_id"))
    user = services.feed_subscribe("chan-2", user_id="a")
    assert len({first, second, user}) == 3
    text, seq, producer = await services.feed_first_frame(second)
    assert '"sort":"user_id"' in text and seq == 1 and producer == "local"
    services.feed_unsubscribe("chan-1")
    services.feed_unsubscribe("chan-2")
    assert face_get().registry.subscriptions() == {}
    assert await services.feed_first_frame(second) is None  # nobody watches it any more
