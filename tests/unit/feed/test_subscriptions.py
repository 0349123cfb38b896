"""Subscriptions: the views sockets watch, the registry of a face, the directory of every face in Redis."""

from __future__ import annotations

from usermetrics.feed.subscriptions import Subscription, SubscriptionRegistry
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
