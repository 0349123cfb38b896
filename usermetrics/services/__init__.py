"""The service layer: the one door that views, the API, consumers and commands go through, and nothing else.

``live`` (async): the latest board, the producer's state, the status and the feed's registry;
``names`` (sync and async): names for user ids; ``pages`` (sync): the list and detail pages and
the not-found rule; ``history_docs`` (async): the history API's documents; ``exports`` (async):
streamed export rows; ``scrape`` (async): a Prometheus scrape; ``costs`` (async): what users' LLM
calls cost now; ``sources`` (sync and async): the sources page and a one-off check of the sources;
``alerts`` (sync): what fires, the alerts page and a test send; ``access`` (async): whether a
socket's session is still staff's; ``actions`` (async to act, sync to read): evict, hold or release
a user through the NAT companions, and the actions' log. ``UNREACHABLE`` are the database's outage
errors and ``history_or_none`` the one way a page reads the history through one. Starting a face
or a producer is ``usermetrics.publish``'s; test hooks are ``usermetrics.testing``'s.
"""

from .access import feed_access_check
from .actions import (
    ACTIONS,
    MAX_HOLD,
    MAX_REASON,
    NOT_REPORTED,
    PERMISSION,
    PERMISSION_WORDS,
    REASON_PATTERN,
    ActionRefused,
    ActionsPanel,
    ActionsUnavailable,
    action_doc,
    user_action_do,
    user_actions_list,
    user_actions_panel_get,
    user_hold_get,
)
from .alerts import (
    AlertsOverview,
    Firing,
    RouteResult,
    alert_routes,
    alerts_firing,
    alerts_overview_get,
    alerts_test_send,
)
from .commands import BOARD, outcome_words
from .costs import fleet_llm_get, user_cost_get
from .exports import Export, user_history_export, users_export
from .history_docs import MAX_USERS, overview_history_doc, rows_window_doc, sparklines_doc, user_history_doc
from .live import (
    CHANNEL_LAYER_ERRORS,
    VERSION,
    board_get,
    feed_announce,
    feed_first_frame,
    feed_status,
    feed_subscribe,
    feed_unsubscribe,
    producer_state,
    source_status,
)
from .names import identities_import, labels_aget, labels_get
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
from .sources import sources_check, sources_doc, sources_page_get
from .spend import SpendOverview, currency_get, spend_overview_get

__all__ = [
    "ACTIONS",
    "BOARD",
    "CHANNEL_LAYER_ERRORS",
    "MAX_HOLD",
    "MAX_REASON",
    "MAX_USERS",
    "NOT_REPORTED",
    "PERMISSION",
    "PERMISSION_WORDS",
    "REASON_PATTERN",
    "UNREACHABLE",
    "VERSION",
    "ActionRefused",
    "ActionsPanel",
    "ActionsUnavailable",
    "AlertsOverview",
    "Export",
    "Firing",
    "ListPage",
    "RouteResult",
    "Row",
    "RowWindow",
    "ScrapeState",
    "SpendOverview",
    "UserLookup",
    "UserWindow",
    "action_doc",
    "alert_routes",
    "alerts_firing",
    "alerts_overview_get",
    "alerts_test_send",
    "board_get",
    "currency_get",
    "feed_access_check",
    "feed_announce",
    "feed_first_frame",
    "feed_status",
    "feed_subscribe",
    "feed_unsubscribe",
    "fleet_llm_get",
    "history_or_none",
    "identities_import",
    "labels_aget",
    "labels_get",
    "list_page_get",
    "outcome_words",
    "overview_history_doc",
    "producer_state",
    "rows_window_doc",
    "scrape_get",
    "source_status",
    "sources_check",
    "sources_doc",
    "sources_page_get",
    "sparklines_doc",
    "spend_overview_get",
    "user_action_do",
    "user_actions_list",
    "user_actions_panel_get",
    "user_cost_get",
    "user_history_doc",
    "user_history_export",
    "user_hold_get",
    "user_lookup",
    "user_window",
    "users_export",
]
