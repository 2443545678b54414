import os

import pytest
from django.core.cache import cache

from tests.factories import UserFactory
from tests.worker_procs import WorkerPool

# CI sets SPATIALLAB_REQUIRE_SERVICES=1: then a test skipped because a service (PostgreSQL, Redis, Chromium)
# is missing counts as a failure instead of silently passing.
REQUIRE_SERVICES = os.environ.get("SPATIALLAB_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped with SPATIALLAB_REQUIRE_SERVICES=1 (a required service is missing): {reason}"


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # Production serves hashed static names from collectstatic's manifest (tested in test_settings.py); the
    # tests render pages without running collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters live in the cache; one test's requests must not throttle the next.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def annotator(db):
    return UserFactory(username="ann", role="annotator")


@pytest.fixture
def researcher(db):
    return UserFactory(username="res", role="researcher")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="boss", role="admin")


@pytest.fixture
def workers(request, tmp_path):
    """Starts real Celery worker processes against the test database; all are stopped after the test.

    Use with `transactional_db` (the worker process only sees committed rows)."""
    pool = WorkerPool(tmp_path)
    yield pool
    pool.stop_all()
