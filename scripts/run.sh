#!/usr/bin/env bash
# Sets up and runs the whole platform on the embedded default: SQLite and a filesystem Celery broker under
# var/, media on local disk, demo accounts and a demo prompt set. Web at http://127.0.0.1:8000, plus one
# Celery worker (queues cpu and gpu, with the beat schedule that requeues jobs of lost workers).
# Set DATABASE_URL / CELERY_BROKER_URL first to run the same thing on PostgreSQL and Redis.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_project "ml"

PORT="${PORT:-8000}"
export DEBUG="${DEBUG:-1}"  # local use: runserver serves static files and reloads on change

"$PY" manage.py migrate --noinput
"$PY" manage.py seed_demo

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# One worker process serves both queues here; production runs separate cpu and gpu workers
# (docker-compose.yml). --pool solo: torch/CUDA must not be initialised in a forked child.
"$PY" -m celery -A workers.app worker -Q cpu,gpu --pool solo --concurrency 1 --beat \
    --loglevel INFO &
pids+=($!)
"$PY" manage.py runserver "127.0.0.1:$PORT" &
pids+=($!)
echo "==> SpatialLab on http://127.0.0.1:$PORT (Ctrl-C stops web and worker)"
wait -n "${pids[@]}"
