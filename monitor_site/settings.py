"""Django settings for the usermetrics dashboard (sync): env-driven, safe local defaults."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# The Django-level environment variables this file reads: name -> (default, meaning). The docs'
# configuration page is generated from this table and from USERMETRICS_ENV below
# (scripts/mkdocs_hooks.py); tests/unit/monitor_site/test_settings.py holds every variable read here to one of the two.
# A blank value counts as unset.
SITE_ENV: dict[str, tuple[str, str]] = {
    "DEBUG": (
        "0",
        "Django debug mode. With it off, `SECRET_KEY` and `ALLOWED_HOSTS` must be set or the app refuses to start.",
    ),
    "SECRET_KEY": (
        "",
        "50+ random characters, the same in every process; required with `DEBUG` off "
        "(the run command generates one into `var/secret_key`).",
    ),
    "ALLOWED_HOSTS": (
        "",
        "Comma-separated host names; `*` is refused with `DEBUG` off. Unset with `DEBUG` on: "
        "`127.0.0.1,localhost,[::1]` (the run command sets `127.0.0.1,localhost`).",
    ),
    "CSRF_TRUSTED_ORIGINS": (
        "",
        "Comma-separated origins, when behind a proxy on another origin; the live feed accepts them too "
        "(`https://dash.example.com`, `https://*.example.com`).",
    ),
    "USERMETRICS_VAR_DIR": (
        "",
        "Where SQLite, the generated secret key and collected static files live (unset: `var/`).",
    ),
    "DATABASE_URL": (
        "",
        "Any URL dj-database-url understands, e.g. `postgres://user@host:5432/db` (unset: SQLite, "
        "`<USERMETRICS_VAR_DIR>/db.sqlite3`).",
    ),
    "USERMETRICS_HTTPS": (
        "0",
        "`1` behind a TLS proxy: secure cookies, HSTS, SSL redirect, and the scheme from `X-Forwarded-Proto`.",
    ),
    "USERMETRICS_LOGIN_FAILURE_LIMIT": (
        "5",
        "Failed logins in a row that lock a username at an address out (django-axes); a success resets the count.",
    ),
    "USERMETRICS_LOGIN_COOLOFF_MINUTES": ("15", "Minutes such a lock-out lasts."),
    "USERMETRICS_TRUSTED_PROXIES": (
        "0",
        "Proxies in front that append to `X-Forwarded-For` (`1` behind one nginx): the login throttle then counts "
        "the address the outermost one saw; without it the header is ignored.",
    ),
    "USERMETRICS_LOG_LEVEL": (
        "INFO",
        "Log level of the `usermetrics` loggers; `DEBUG` also shows every source fetch (httpx).",
    ),
}


def site_env(name: str) -> str:
    """The Django-level environment variable ``name`` (one of SITE_ENV), or its default when unset or blank."""
    raw = os.environ.get(name, "")
    return raw if raw.strip() else SITE_ENV[name][0]


def env_bool(name: str) -> bool:
    """An on/off variable of SITE_ENV: 1/true/yes/on or 0/false/no/off."""
    raw = site_env(name)
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated environment variable as a list of non-empty, stripped items."""
    return [item.strip() for item in (os.environ.get(name, "").strip() or default).split(",") if item.strip()]


def env_tree(table: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The variables of ``table`` that are set (not blank), as a nested dict of their raw strings by key path.

    ``{"USERMETRICS_HISTORY_RAW_DAYS": ("HISTORY", "RAW_RETENTION_DAYS")}`` with that variable set to
    ``"3"`` gives ``{"HISTORY": {"RAW_RETENTION_DAYS": "3"}}``; usermetrics.conf casts and checks it.
    """
    tree: dict[str, Any] = {}
    for name, path in table.items():
        raw = os.environ.get(name, "")
        if not raw.strip():
            continue
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = raw
    return tree


# ==============================================================================
# Core and secrets
# ==============================================================================

DEBUG = env_bool("DEBUG")

_INSECURE_KEY = "django-insecure-usermetrics-local-development-only"
SECRET_KEY = site_env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it (50+ random characters), or set DEBUG=1 for local development."
        )
    SECRET_KEY = _INSECURE_KEY
elif not DEBUG and (SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("SECRET_KEY must be a real secret (50+ random characters) when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
if not DEBUG and (not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS):
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must list this server's host names when DEBUG is off (for example 127.0.0.1,localhost)."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# ==============================================================================
# Applications
# ==============================================================================

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves HTTP and websockets through ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",  # login throttling (see "Auth" below)
    "usermetrics",
]

# usermetrics.middleware's are Django's own classes whose hooks, in an async request, run on the event
# loop instead of a thread hop each (the request path's cost, docs/benchmarks.md); a session or messages
# to save still go to the request's thread.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The database unreachable: a 503 page that says so instead of a 500 (/api/ ones answer JSON below).
    "usermetrics.middleware.DatabaseUnreachableMiddleware",
    "usermetrics.api.errors.ApiJsonErrorsMiddleware",  # /api/ 404s and 405s in JSON, whatever answered them
    "usermetrics.middleware.SessionMiddleware",
    "usermetrics.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "usermetrics.middleware.AuthenticationMiddleware",
    "usermetrics.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "usermetrics.middleware.WebsocketCSPMiddleware",  # django-csp's, plus the websocket host (see "Security")
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "monitor_site.urls"
ASGI_APPLICATION = "monitor_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ==============================================================================
# Data: database and channel layer
# ==============================================================================

VAR_DIR = Path(site_env("USERMETRICS_VAR_DIR") or BASE_DIR / "var")
DATABASES = {
    "default": dj_database_url.parse(site_env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=0)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The history recorder writes from its own thread while requests read and log in: WAL lets
    # readers run during a write, IMMEDIATE takes the write lock up front instead of failing on
    # upgrade, and the timeout waits for it rather than raising "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The channel layer needs three USERMETRICS values here, before usermetrics.conf may be read (settings
# import no app code): the same variables as USERMETRICS_ENV, with conf's defaults (a test holds them equal).
REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PREFIX = os.environ.get("USERMETRICS_REDIS_PREFIX", "").strip() or "usermetrics"
REFRESH_INTERVAL = float(os.environ.get("USERMETRICS_REFRESH_INTERVAL", "").strip() or "2")
if REDIS_URL:
    # Frames are whole snapshots of a view: a socket never needs more than a few queued, and one
    # older than a few refreshes is worth nothing. A consumer that falls behind loses the oldest
    # (channels_redis drops over capacity) instead of growing Redis or its worker.
    # channels_redis puts every socket of a face in one Redis inbox (``specific.<process>!``) and
    # checks the capacity on that inbox: 10 there dropped frames at random as soon as a face watched
    # more than 10 views. The inbox gets room for one frame per watched view for a few refreshes
    # (expiry still bounds it); each socket keeps its own queue of ``capacity`` in the face.
    # redis-py 8 bounds a pool at 100 connections and raises past it (a burst of reconnects failed
    # inside group_add with close 1011): allow as many as a face's sockets may use at once.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the very length of the
                # layer's blocking pop (BZPOPMIN, 5 s): an idle socket's receive then raises
                # TimeoutError and Daphne closes it with 1011 (channels_redis#422). Read longer than
                # the pop, still short enough to notice a Redis that is gone.
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5, "max_connections": 1000}
                ],
                "prefix": f"{REDIS_PREFIX}:asgi",
                "capacity": 10,
                "expiry": max(5, round(3 * REFRESH_INTERVAL)),
                "group_expiry": 86400,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10}}}

# ==============================================================================
# Auth, i18n, static
# ==============================================================================

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins in a row for one username
# from one address, that pair is locked out for AXES_COOLOFF_TIME (a success resets the count).
# Unlock early with `manage.py axes_reset_username NAME` (or axes_reset_ip / axes_reset).
# The axes backend must come first: it refuses a locked-out pair before any password is checked.
# The second is Django's ModelBackend that, only while the database is unreachable, serves the
# user it read last (usermetrics/outage.py): staff logged in before an outage keep the live pages.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "usermetrics.outage.OutageTolerantBackend",
]
# Database sessions, read every request; the session read last only while the database is
# unreachable. Not cached_db: a per-process cache is read first and would keep a session logged out
# on another face alive; Redis would make every page depend on Redis (see usermetrics/outage.py).
SESSION_ENGINE = "usermetrics.outage"
AXES_FAILURE_LIMIT = int(site_env("USERMETRICS_LOGIN_FAILURE_LIMIT"))
AXES_COOLOFF_TIME = timedelta(minutes=float(site_env("USERMETRICS_LOGIN_COOLOFF_MINUTES")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
# The address axes counts by: REMOTE_ADDR, or behind USERMETRICS_TRUSTED_PROXIES proxies the
# address the outermost one saw (X-Forwarded-For); never a header a client could just send.
TRUSTED_PROXIES = int(site_env("USERMETRICS_TRUSTED_PROXIES"))
AXES_CLIENT_IP_CALLABLE = "usermetrics.middleware.client_address"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# ==============================================================================
# Security (HTTPS hardening is on with USERMETRICS_HTTPS=1, behind a TLS proxy)
# ==============================================================================

HTTPS = env_bool("USERMETRICS_HTTPS")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this origin only, no
# 'unsafe-inline' or 'unsafe-eval' (the pages' data comes as json_script blocks and text, never code).
# connect-src also gets ws:// and wss:// of the request's host, per request (usermetrics.middleware).
# With DEBUG on, django-csp leaves 404 and 500 answers without it: Django's debug pages need inline code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# ==============================================================================
# Logging
# ==============================================================================

LOG_LEVEL = site_env("USERMETRICS_LOG_LEVEL").strip().upper()
# One handler, on the root logger, in one format: every logger (ours, Django's, Daphne's) reaches
# it once by propagation. Daphne's own basicConfig handler is replaced when Django configures this.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "usermetrics": {"level": LOG_LEVEL},
        # httpx says every source fetch at INFO (one line per source each refresh): only at DEBUG here.
        # Failures and state changes are ours to say, at WARNING.
        "httpx": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
        "httpcore": {"level": "WARNING"},
        # "N of M channels over capacity in group ..." at INFO on every frame to a socket that
        # fell behind: such a socket loses frames (and the page says "updated N s ago"); say less.
        "channels_redis": {"level": "WARNING"},
        # Apprise logs a route's URL in places; usermetrics.alerts.delivery captures its warnings,
        # strips the secrets and logs them itself, so Apprise's own records go nowhere.
        "apprise": {"handlers": [], "level": "WARNING", "propagate": False},
        "urllib3": {"level": "WARNING"},  # its DEBUG lines carry a webhook's path
        # "AXES: BEGIN version ..." at INFO in every process that sets Django up: the run command's
        # migrate, ensureadmin, Daphne and its producer each printed it.
        "axes.apps": {"level": "WARNING"},
    },
}

# ==============================================================================
# usermetrics (read only through usermetrics.conf.get_config())
# ==============================================================================

# Each environment variable of the dashboard's own settings, by its key path in USERMETRICS. Settings pass
# only the variables that are set, as their raw strings: usermetrics.conf holds every default and its
# meaning, and casts and checks every value (an unknown path here is an error there).
USERMETRICS_ENV: dict[str, tuple[str, ...]] = {
    "USERMETRICS_REFRESH_INTERVAL": ("REFRESH_INTERVAL",),
    "USERMETRICS_SOURCE_TIMEOUT": ("SOURCE_TIMEOUT",),
    "USERMETRICS_SOURCE_DOWN_AFTER": ("SOURCE_DOWN_AFTER",),
    # NAT servers, "name=http://host:port,name2=http://host2:port"; for per-source timeouts, headers, time
    # zones and eviction timeouts write a list of USERMETRICS["SOURCES"] dicts instead.
    "NAT_SOURCES": ("SOURCES",),
    "USERMETRICS_API_TOKENS": ("API_TOKENS",),
    # API tokens that may also evict, hold and release users (the Actions page of the docs).
    "USERMETRICS_ACTIONS_TOKENS": ("ACTIONS_TOKENS",),
    "USERMETRICS_ACTIONS_TIMEOUT": ("ACTIONS_TIMEOUT",),
    # {"model": {"prompt": 2.5, "completion": 10, "cached": 1.25}} per million tokens, in USERMETRICS_CURRENCY.
    "USERMETRICS_PRICES": ("PRICES",),
    "USERMETRICS_CURRENCY": ("CURRENCY",),
    "USERMETRICS_DEMO": ("DEMO", "ENABLED"),
    "USERMETRICS_DEMO_USERS": ("DEMO", "USERS"),
    "USERMETRICS_DEMO_SEED": ("DEMO", "SEED"),
    "USERMETRICS_DEMO_EXTRA_USERS": ("DEMO", "EXTRA_USERS"),
    "USERMETRICS_FEED_MAX_FRAME_BYTES": ("FEED_MAX_FRAME_BYTES",),
    "USERMETRICS_FEED_MAX_UNSENT_BYTES": ("FEED_MAX_UNSENT_BYTES",),
    "USERMETRICS_HISTORY": ("HISTORY", "ENABLED"),
    "USERMETRICS_HISTORY_SAMPLE_INTERVAL": ("HISTORY", "SAMPLE_INTERVAL"),
    "USERMETRICS_HISTORY_RAW_DAYS": ("HISTORY", "RAW_RETENTION_DAYS"),
    "USERMETRICS_HISTORY_ROLLUP_DAYS": ("HISTORY", "ROLLUP_RETENTION_DAYS"),
    # embedded: this Daphne starts its producer as a child process (manage.py runmonitor --parent SOCKET);
    # external: it only serves what a runmonitor publishes through Redis.
    "USERMETRICS_PRODUCER": ("PRODUCER",),
    "REDIS_URL": ("REDIS_URL",),
    "USERMETRICS_REDIS_PREFIX": ("REDIS_PREFIX",),
    "USERMETRICS_PRODUCER_TIMEOUT": ("PRODUCER_TIMEOUT",),
    "USERMETRICS_METRICS_TOKENS": ("METRICS_TOKENS",),
    "USERMETRICS_METRICS_ALLOW": ("METRICS_ALLOW",),
    "USERMETRICS_ALERTS": ("ALERTS", "ENABLED"),
    # Default routes: comma-separated Apprise URLs (secrets inside them are never logged or shown).
    "USERMETRICS_ALERT_URLS": ("ALERTS", "URLS"),
    "USERMETRICS_DASHBOARD_URL": ("ALERTS", "DASHBOARD_URL"),
}
USERMETRICS = env_tree(USERMETRICS_ENV)
