"""Settings for the test suite (sync): the real settings with test-safe environment defaults."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# Tests install their own sources; the demo workload would add users of its own.
os.environ.setdefault("USERMETRICS_DEMO", "0")
# Several checkouts share the machine's one Redis: keys, channels and the lease of this run only.
os.environ.setdefault("USERMETRICS_REDIS_PREFIX", f"umtest-{os.getpid()}")

from monitor_site.settings import *  # noqa: F403

# Several checkouts run their suites against the machine's one PostgreSQL: one test database per
# run, so that two suites at once do not create and flush the same tables under each other.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {**DATABASES["default"].get("TEST", {}), "NAME": f"test_usermetrics_{os.getpid()}"}  # noqa: F405
elif DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A directory of this run's own (with the WAL's side files), removed when the run ends (tests/conftest.py).
    TEST_DATABASE_DIR = tempfile.mkdtemp(prefix="usermetrics-tests-")
    # A file, as the embedded default has, not Django's shared-cache in-memory database: there a
    # reader meeting a writer fails at once with "database table is locked" (shared-cache table
    # locks ignore the busy timeout), which a websocket's session re-check took for an outage.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        **DATABASES["default"].get("TEST", {}),  # noqa: F405
        "NAME": os.path.join(TEST_DATABASE_DIR, "test.sqlite3"),
    }
