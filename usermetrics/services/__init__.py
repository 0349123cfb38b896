"""The service layer: the one door that views, the API, consumers and commands go through.

``live`` (async): the latest board, the producer's state, names, the feed's registry, and the
start of this process's face (and embedded producer); ``pages`` (sync): the list and detail
pages and the not-found rule; ``history_docs`` (async): the history API's documents; ``exports``
(async): streamed export rows; ``scrape`` (async): a Prometheus scrape; ``sources`` (sync and
async): the sources page; ``alerts`` (sync): what fires, the alerts page and a test send;
``access`` (async): whether a socket's session is still staff's; ``assembly``: the monitor and
producer the settings describe. ``UNREACHABLE`` are the database's outage errors and
``history_or_none`` the one way a page reads the history through one.
"""

from .access import feed_access_check
from .alerts import (
    AlertsOverview,
    Firing,
    RouteResult,
    alert_routes,
    alerts_firing,
    alerts_overview_get,
    alerts_test_send,
)
from .assembly import child_producer, monitor_build, producer_run, redis_producer, sources_check
from .exports import Export, user_history_export, users_export
from .history_docs import MAX_USERS, overview_history_doc, rows_window_doc, sparklines_doc, user_history_doc
from .live import (
    CHANNEL_LAYER_ERRORS,
    VERSION,
    Face,
    board_get,
    face_get,
    face_install,
    face_local,
    faces_start,
    faces_stop,
    feed_first_frame,
    feed_status,
    feed_subscribe,
    feed_unsubscribe,
    identities_import,
    labels_aget,
    labels_get,
    producer_local,
    producer_state,
    source_status,
)
from .pages import (
    UNREACHABLE,
    ListPage,
    Row,
    RowWindow,
    UserLookup,
    UserWindow,
    history_or_none,
    list_page_get,
    user_lookup,
    user_window,
)
from .scrape import ScrapeState, scrape_get
from .sources import sources_doc, sources_page_get

__all__ = [
    "CHANNEL_LAYER_ERRORS",
    "MAX_USERS",
    "UNREACHABLE",
    "VERSION",
    "AlertsOverview",
    "Export",
    "Face",
    "Firing",
    "ListPage",
    "RouteResult",
    "Row",
    "RowWindow",
    "ScrapeState",
    "UserLookup",
    "UserWindow",
    "alert_routes",
    "alerts_firing",
    "alerts_overview_get",
    "alerts_test_send",
    "board_get",
    "child_producer",
    "face_get",
    "face_install",
    "face_local",
    "faces_start",
    "faces_stop",
    "feed_access_check",
    "feed_first_frame",
    "feed_status",
    "feed_subscribe",
    "feed_unsubscribe",
    "history_or_none",
    "identities_import",
    "labels_aget",
    "labels_get",
    "list_page_get",
    "monitor_build",
    "overview_history_doc",
    "producer_local",
    "producer_run",
    "producer_state",
    "redis_producer",
    "rows_window_doc",
    "scrape_get",
    "source_status",
    "sources_check",
    "sources_doc",
    "sources_page_get",
    "sparklines_doc",
    "user_history_doc",
    "user_history_export",
    "user_lookup",
    "user_window",
    "users_export",
]
