#!/usr/bin/env bash
# Installs everything the tests need (the project with its ml and dev extras, Debian's Chromium for the browser
# tests) and runs the whole suite. Extra arguments go to pytest, e.g. scripts/test.sh -k worker -x
# Without DATABASE_URL / CELERY_BROKER_URL the suite runs on SQLite and the filesystem broker; the
# Redis-broker tests use TEST_REDIS_URL (default redis://127.0.0.1:6379/15) and skip when it is unreachable,
# unless SPATIALLAB_REQUIRE_SERVICES=1 (CI), which turns every such skip into a failure.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project "ml,dev"

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    echo "==> installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
    "${apt_get[@]}" install -y -q chromium >/dev/null || "${apt_get[@]}" update -q >/dev/null
    [ -x /usr/bin/chromium ] || "${apt_get[@]}" install -y -q chromium >/dev/null
fi

exec "$PY" -m pytest "$@"
