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
def _media_in_tmp(settings, tmp_path):
    # Generated images go through the storage API; each test gets its own media folder (workers started by
    # the test get the same one: tests/worker_procs.py passes MEDIA_ROOT on).
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _thaw_frozen_datasets_before_flush(request):
    """Transactional tests end with a table flush; on SQLite that is DELETE FROM, which the triggers guarding
    frozen dataset versions refuse. Those rows are removed first, with the guards lifted for that moment."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool({"transactional_db", "live_server", "demo_accounts"} & set(request.fixturenames)) or bool(
        marker and marker.kwargs.get("transaction"))
    if transactional:
        request.getfixturevalue("transactional_db")  # set up first, so that this teardown runs before its flush
    yield
    if transactional:
        from django.db import connection

        if connection.vendor == "sqlite":
            from spatiallab.datasets.guards import purge_for_tests

            purge_for_tests(connection)


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


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Tests create many users; the production hasher costs a quarter second per password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(researcher):
    """An API client authenticated with the researcher's token."""
    from tests.factories import token_client

    return token_client(researcher)


# --- Browser tests (real Chromium, tests/browser.py) ------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; without this Django refuses ORM calls made from
    # it. Only while a browser module runs: subprocesses of other tests (the deploy check) must not inherit it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    """A fresh browser context per test; page errors, console errors and requested URLs are collected."""
    from tests.browser import TIMEOUT_MS

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.errors = []
    page.requests = []
    page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(f"console: {msg.text}"))
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    context.close()


@pytest.fixture
def demo_accounts(transactional_db):
    """The demo accounts exactly as `seed_demo` creates them (README's credentials)."""
    import io

    from django.core.management import call_command

    call_command("seed_demo", stdout=io.StringIO())


# --- Reward models ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def reward_backbone(tmp_path_factory):
    """A tiny random Qwen2.5-VL folder (ml.reward.tiny), built once per test session."""
    from ml.reward.tiny import build_tiny_backbone

    return build_tiny_backbone(tmp_path_factory.mktemp("reward-backbone") / "tiny")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one thread than two competing for 2 cores; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
