"""The one time rule: naive source times become aware UTC as ``astimezone()`` says, DST and odd zones included."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from usermetrics.clock import time_to_utc


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_clock_naive_times_become_utc_as_astimezone_says_across_dst(zone_name, monkeypatch):
    """NAT's naive local times convert as ``astimezone()`` would, also around DST changes and in odd zones."""
    monkeypatch.setenv("TZ", zone_name)
    time.tzset()
    try:
        zone = ZoneInfo(zone_name)
        start = datetime(2026, 1, 1)
        for step in range(0, 365 * 24 * 60, 7):  # every 7 minutes of a year: every DST change, either side
            naive = start + timedelta(minutes=step, seconds=step % 60, microseconds=step)
            assert time_to_utc(naive, None) == naive.astimezone().astimezone(UTC), naive
            assert time_to_utc(naive, zone) == naive.replace(tzinfo=zone).astimezone(UTC), naive
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
