"""The service layer: the one door that views, the API, consumers and commands go through.

``live`` (async): the process's monitor service, snapshots, names and the feed; ``pages`` (sync):
the list and detail pages and the not-found rule; ``history_docs`` (async): the history API's
documents; ``exports`` (async): streamed export rows; ``scrape`` (async): a Prometheus scrape;
``assembly`` (sync): the service the settings describe.
"""

from .assembly import service_build
from .exports import Export, user_history_export, users_export
from .history_docs import MAX_USERS, overview_history_doc, rows_window_doc, sparklines_doc, user_history_doc
from .live import (
    VERSION,
    feed_frame,
    feed_subscribe,
    feed_unsubscribe,
    get_service,
    identities_import,
    labels_aget,
    labels_get,
    recorder_get,
    service_start,
    set_service,
    snapshot_get,
    snapshot_latest,
    source_status,
    user_metrics_get,
    user_metrics_list,
)
from .pages import ListPage, Row, RowWindow, UserLookup, UserWindow, list_page_get, user_lookup, user_window
from .scrape import ScrapeState, scrape_get

__all__ = [
    "MAX_USERS",
    "VERSION",
    "Export",
    "ListPage",
    "Row",
    "RowWindow",
    "ScrapeState",
    "UserLookup",
    "UserWindow",
    "feed_frame",
    "feed_subscribe",
    "feed_unsubscribe",
    "get_service",
    "identities_import",
    "labels_aget",
    "labels_get",
    "list_page_get",
    "overview_history_doc",
    "recorder_get",
    "rows_window_doc",
    "scrape_get",
    "service_build",
    "service_start",
    "set_service",
    "snapshot_get",
    "snapshot_latest",
    "source_status",
    "sparklines_doc",
    "user_history_doc",
    "user_history_export",
    "user_lookup",
    "user_metrics_get",
    "user_metrics_list",
    "user_window",
    "users_export",
]
