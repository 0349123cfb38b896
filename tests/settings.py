"""Settings for the test suite (sync): the real settings with test-safe environment defaults."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# Tests install their own sources; the demo workload would add users of its own.
os.environ.setdefault("USERMETRICS_DEMO", "0")

from monitor_site.settings import *  # noqa: F403
