"""User ids in URL paths: one segment each, any string, round-tripping through reverse() and the converter."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.urls import resolve, reverse

from tests.test_api_live import ODD_IDS
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


def test_converters_bad_escape_is_a_value_error():
    with pytest.raises(ValueError):
        UserIdConverter().to_python("bad~escape")
    assert UserIdConverter().to_url("a/b") == "a~2Fb"
