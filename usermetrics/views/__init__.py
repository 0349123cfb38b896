"""Admin-style HTML pages (sync views), staff only: the users (``users``), the sources and API docs (``sources``),
the alerts page (``alerts``), the user page's actions (``actions``)."""

from .actions import user_action
from .alerts import alerts, alerts_test
from .sources import api_docs, sources_page
from .users import user_detail, user_list, ws_user_path

__all__ = [
    "alerts",
    "alerts_test",
    "api_docs",
    "sources_page",
    "user_action",
    "user_detail",
    "user_list",
    "ws_user_path",
]
