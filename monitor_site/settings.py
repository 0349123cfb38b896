"""Django settings for the usermetrics dashboard (sync): env-driven, safe local defaults."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool | None) -> bool | None:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off; ``default`` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated environment variable as a list of non-empty, stripped items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# ==============================================================================
# Core and secrets
# ==============================================================================

DEBUG = env_bool("DEBUG", False)

_INSECURE_KEY = "django-insecure-usermetrics-local-development-only"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
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

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The database unreachable: a 503 page that says so instead of a 500 (/api/ ones answer JSON below).
    "usermetrics.middleware.DatabaseUnreachableMiddleware",
    "usermetrics.api.errors.ApiJsonErrorsMiddleware",  # /api/ 404s and 405s in JSON, whatever answered them
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
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

VAR_DIR = Path(os.environ.get("USERMETRICS_VAR_DIR", BASE_DIR / "var"))
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=0
    )
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

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PREFIX = os.environ.get("USERMETRICS_REDIS_PREFIX", "usermetrics")
REFRESH_INTERVAL = float(os.environ.get("USERMETRICS_REFRESH_INTERVAL", "2"))
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
AXES_FAILURE_LIMIT = int(os.environ.get("USERMETRICS_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("USERMETRICS_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
# The address axes counts by: REMOTE_ADDR, or behind USERMETRICS_TRUSTED_PROXIES proxies the
# address the outermost one saw (X-Forwarded-For); never a header a client could just send.
TRUSTED_PROXIES = int(os.environ.get("USERMETRICS_TRUSTED_PROXIES", "0"))
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

HTTPS = env_bool("USERMETRICS_HTTPS", False)
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

LOG_LEVEL = os.environ.get("USERMETRICS_LOG_LEVEL", "INFO").upper()
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

USERMETRICS = {
    "REFRESH_INTERVAL": REFRESH_INTERVAL,
    # embedded: this process runs the producer (a thread); external: only serve what runmonitor publishes.
    "PRODUCER": os.environ.get("USERMETRICS_PRODUCER", "embedded"),
    "REDIS_URL": REDIS_URL,
    "REDIS_PREFIX": REDIS_PREFIX,
    "PRODUCER_TIMEOUT": float(os.environ["USERMETRICS_PRODUCER_TIMEOUT"])
    if os.environ.get("USERMETRICS_PRODUCER_TIMEOUT")
    else None,
    "SOURCE_TIMEOUT": float(os.environ.get("USERMETRICS_SOURCE_TIMEOUT", "5")),
    "SOURCE_DOWN_AFTER": float(os.environ.get("USERMETRICS_SOURCE_DOWN_AFTER", "30")),
    # NAT servers to poll, "name=http://host:port,name2=http://host2:port"; for per-source timeouts,
    # headers, time zones and eviction timeouts write a list of USERMETRICS["SOURCES"] dicts instead.
    "SOURCES": os.environ.get("NAT_SOURCES", ""),
    "API_TOKENS": env_list("USERMETRICS_API_TOKENS"),
    "DEMO": {
        # Unset (None): on unless NAT servers are configured (usermetrics.conf decides).
        "ENABLED": env_bool("USERMETRICS_DEMO", None),
        "USERS": int(os.environ.get("USERMETRICS_DEMO_USERS", "40")),
        "SEED": int(os.environ.get("USERMETRICS_DEMO_SEED", "0")),
        "EXTRA_USERS": env_list("USERMETRICS_DEMO_EXTRA_USERS"),
    },
    "FEED_MAX_FRAME_BYTES": int(os.environ.get("USERMETRICS_FEED_MAX_FRAME_BYTES", str(512 * 1024))),
    "FEED_MAX_UNSENT_BYTES": int(os.environ.get("USERMETRICS_FEED_MAX_UNSENT_BYTES", str(4 * 1024 * 1024))),
    "HISTORY": {
        "ENABLED": env_bool("USERMETRICS_HISTORY", True),
        "SAMPLE_INTERVAL": float(os.environ.get("USERMETRICS_HISTORY_SAMPLE_INTERVAL", "15")),
        "RAW_RETENTION_DAYS": float(os.environ.get("USERMETRICS_HISTORY_RAW_DAYS", "7")),
        "ROLLUP_RETENTION_DAYS": float(os.environ.get("USERMETRICS_HISTORY_ROLLUP_DAYS", "90")),
    },
    "METRICS_TOKENS": env_list("USERMETRICS_METRICS_TOKENS"),
    "METRICS_ALLOW": env_list("USERMETRICS_METRICS_ALLOW"),
    "ALERTS": {
        "ENABLED": env_bool("USERMETRICS_ALERTS", True),
        # Default routes: comma-separated Apprise URLs (secrets inside them are never logged or shown).
        "URLS": env_list("USERMETRICS_ALERT_URLS"),
        "DASHBOARD_URL": os.environ.get("USERMETRICS_DASHBOARD_URL", ""),
    },
}
