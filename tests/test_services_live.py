"""The service layer's live door: NAT-shaped lists, one user, the status, the feed's registry."""

from __future__ import annotations

from datetime import datetime

from tests.factories import ScriptedSource, record
from usermetrics import services
from usermetrics.selection import ViewSpec
from usermetrics.sources import LocalSource


async def test_services_list_filter_and_unknown_user(install_service, manager):
    async with manager.session("alice"):
        pass
    async with manager.session("bob"):
        pass
    install_service([LocalSource("local", manager)])
    everyone = await services.user_metrics_list()
    assert [u.user_id for u in everyone.users] == ["alice", "bob"] and everyone.total_active_users == 2
    only = await services.user_metrics_list(user_id="bob")
    assert [u.user_id for u in only.users] == ["bob"] and only.total_active_users == 1
    nobody = await services.user_metrics_list(user_id="nobody")
    assert nobody.users == [] and nobody.total_active_users == 0
    assert await services.user_metrics_get(user_id="nobody") is None
    assert (await services.user_metrics_get(user_id="alice")).user_id == "alice"


async def test_services_status_shape(install_service, manager):
    install_service([LocalSource("local", manager)], interval=3.0, timeout=1.5)
    status = await services.source_status()
    assert status["version"] == services.VERSION
    assert status["refresh_interval"] == 3.0 and status["source_timeout"] == 1.5
    assert datetime.fromisoformat(status["last_refresh"]).tzinfo is not None
    (source,) = status["sources"]
    assert source["name"] == "local" and source["kind"] == "local" and source["state"] == "ok"


async def test_services_status_reports_a_stale_source(install_service):
    flaky = ScriptedSource("flaky", [record("kept")], "hang")
    service = install_service([flaky, ScriptedSource("steady", [record("other")])], timeout=0.05)
    await service.refresh()
    await service.refresh()
    status = await services.source_status()
    assert [s["state"] for s in status["sources"]] == ["stale", "ok"]
    assert status["sources"][0]["users_stale"] is True and status["sources"][0]["users"] == 1


async def test_services_feed_registry_moves_a_channel_between_views(install_service):
    install_service([ScriptedSource("s", [record("a")])], interval=3600)
    first = services.feed_subscribe("chan-1", spec=ViewSpec())
    second = services.feed_subscribe("chan-1", spec=ViewSpec(sort="user_id"))
    user = services.feed_subscribe("chan-2", user_id="a")
    assert len({first, second, user}) == 3
    frame = await services.feed_frame(second)
    assert '"sort":"user_id"' in frame
    services.feed_unsubscribe("chan-1")
    services.feed_unsubscribe("chan-2")
