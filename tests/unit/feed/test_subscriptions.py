"""Subscriptions: the views sockets watch, the registry of a face, the directory of every face in Redis."""

from __future__ import annotations

import asyncio

import pytest

from usermetrics.feed.subscriptions import Subscription, SubscriptionDirectory, SubscriptionRegistry
from usermetrics.selection import ViewSpec


def test_subscriptions_registry_moves_and_forgets_channels():
    registry = SubscriptionRegistry()
    first = registry.subscribe("c1", Subscription(spec=ViewSpec()))
    second = registry.subscribe("c1", Subscription(spec=ViewSpec(sort="user_id")))
    assert first != second and set(registry.subscriptions()) == {second}  # moved, the empty view dropped
    assert registry.unsubscribe("c1") == second and registry.subscriptions() == {} and registry.channels() == []
    assert registry.unsubscribe("never") is None


def test_subscriptions_round_trip_as_untrusted_json():
    view = Subscription(spec=ViewSpec(page=2, q="ada"))
    assert Subscription.from_json(view.to_json()) == view
    assert Subscription.from_json('{"spec": {"page_size": 99999, "sort": "nope"}}').spec == ViewSpec(page_size=500)
    assert Subscription.from_json(Subscription(user_id="a/b").to_json()).group == Subscription(user_id="a/b").group


async def _every_view(directory: SubscriptionDirectory) -> dict[str, Subscription]:
    """Every view any live face watches, by group (what the producer builds frames for)."""
    return {group: view for views in (await directory.collect_faces()).values() for group, view in views.items()}


@pytest.mark.redis
async def test_subscriptions_directory_gathers_every_faces_views(redis):
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    one, two = SubscriptionRegistry(), SubscriptionRegistry()
    one.subscribe("c1", Subscription(spec=ViewSpec()))
    two.subscribe("c2", Subscription(spec=ViewSpec()))
    two.subscribe("c3", Subscription(user_id="a/b"))
    await directory.advertise("face-1", one.subscriptions(), ttl=5)
    await directory.advertise("face-2", two.subscriptions(), ttl=5)
    views = await _every_view(directory)
    assert set(views) == set(one.subscriptions()) | set(two.subscriptions()) and len(views) == 2
    await directory.advertise("face-2", {}, ttl=5)  # its sockets closed
    assert set(await _every_view(directory)) == set(one.subscriptions())
    await directory.advertise("face-1", one.subscriptions(), ttl=0.2)
    await asyncio.sleep(0.4)  # a face that stops renewing is forgotten
    assert await _every_view(directory) == {}


@pytest.mark.redis
async def test_subscriptions_directory_says_which_face_watches_what(redis):
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    first, user = Subscription(spec=ViewSpec()), Subscription(user_id="a/b")
    await directory.advertise("face-1", {first.group: first}, ttl=5)
    await directory.advertise("face-2", {first.group: first, user.group: user}, ttl=5)
    faces = await directory.collect_faces()
    assert {face: set(views) for face, views in faces.items()} == {
        "face-1": {first.group},
        "face-2": {first.group, user.group},
    }
    await directory.advertise("face-1", {}, ttl=5)
    assert set(await directory.collect_faces()) == {"face-2"}
