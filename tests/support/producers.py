"""The producers the ``install_service`` fixture installed (sync): the running test's last one."""

from __future__ import annotations

from usermetrics.publish.producer import Producer

# Filled by ``install_service`` (tests/conftest.py), emptied after each test that used it.
installed: list[Producer] = []


def current_producer() -> Producer:
    """The producer the running test installed last (``install_service``)."""
    return installed[-1]
