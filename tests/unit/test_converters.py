"""User ids in URL paths: one segment each, any string, round-tripping through reverse() and the converter."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import unquote

import pytest
from django.urls import resolve, reverse

from tests.support.factories import ODD_IDS
from tests.support.machine import ROOT
from usermetrics.converters import UserIdConverter, segment_to_user_id, user_id_to_segment


@pytest.mark.parametrize("user_id", ODD_IDS)
def test_converters_segment_codec(user_id):
    segment = user_id_to_segment(user_id)
    assert "/" not in segment and segment not in (".", "..")
    assert segment_to_user_id(segment) == user_id


@pytest.mark.parametrize("user_id", ["a/b", "~", ".x", "50%"])
def test_converters_reverse_and_resolve_agree(user_id):
    # Servers decode the percent-encoding before routing; the ~ escapes survive that.
    path = unquote(reverse("usermetrics:user-detail", args=[user_id]))
    assert resolve(path).kwargs["user_id"] == user_id


def test_converters_empty_id_is_the_reserved_segment():
    # A source may report "user_id": "": it still needs a URL (a path segment cannot be empty).
    assert user_id_to_segment("") == "~"
    assert segment_to_user_id("~") == ""
    assert user_id_to_segment("~") == "~7E"  # no other id encodes to the reserved segment
    path = reverse("usermetrics:user-detail", args=[""])
    assert path == "/users/~/"
    assert resolve(path).kwargs["user_id"] == ""
    assert resolve(reverse("usermetrics:api-user", args=[""])).kwargs["user_id"] == ""


def test_converters_bad_escape_is_a_value_error():
    with pytest.raises(ValueError):
        UserIdConverter().to_python("bad~escape")
    assert UserIdConverter().to_url("a/b") == "a~2Fb"


def test_converters_the_websocket_routes_register_it_without_the_url_table():
    # routing.py must not lean on urls.py having been imported first.
    code = (
        "import django, sys; django.setup(); import usermetrics.routing; "
        "from django.urls.converters import get_converters; "
        "assert 'userid' in get_converters(); assert 'usermetrics.urls' not in sys.modules"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
