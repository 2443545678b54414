"""docker-compose.yml cannot run here (no Docker engine), so it is parsed and checked against the real entry
points: every command it runs must name a module, app and queue that exist in this code base."""

import importlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def command_of(service: dict) -> list[str]:
    command = service["command"]
    if isinstance(command, str):
        return shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        return shlex.split(command[2])
    return command


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in names:
            return args[i + 1]
    return None


def test_services_volumes_and_healthchecks(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "worker-cpu", "worker-gpu"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "media"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for name in ("web", "worker-cpu", "worker-gpu"):
        assert "media:/data/media" in services[name]["volumes"]
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"


def test_app_services_point_at_postgres_and_redis(compose):
    for name in ("web", "worker-cpu", "worker-gpu"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert env["CACHE_URL"].startswith("redis://redis:6379/")
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # a secret from the environment, never a default
        assert "DEBUG" not in env


def test_web_runs_migrations_then_gunicorn_on_the_real_wsgi_app(compose):
    web = compose["services"]["web"]
    script = web["command"][2]
    assert script.index("manage.py migrate") < script.index("gunicorn")
    gunicorn = shlex.split(script.split("&&")[1])
    assert gunicorn[:2] == ["exec", "gunicorn"]
    module, attribute = gunicorn[2].split(":")
    from django.core.handlers.wsgi import WSGIHandler

    assert isinstance(getattr(importlib.import_module(module), attribute), WSGIHandler)
    assert option(gunicorn, "--bind") == "0.0.0.0:8000"
    assert any(port.endswith(":8000") for port in web["ports"])
    assert "/healthz" in " ".join(web["healthcheck"]["test"])


@pytest.mark.parametrize(("service", "queue"), [("worker-cpu", "cpu"), ("worker-gpu", "gpu")])
def test_workers_run_the_real_celery_app_on_their_queue(compose, service, queue):
    from django.conf import settings

    args = command_of(compose["services"][service])
    assert args[:2] == ["celery", "-A"] and args[3] == "worker"
    module = importlib.import_module(args[2])
    assert module.app.main == "spatiallab"
    assert option(args, "-Q", "--queues") == queue
    assert queue in {q.name for q in settings.CELERY_TASK_QUEUES}
    assert compose["services"][service]["healthcheck"]["test"][-2:] == ["-m", "workers.healthcheck"]


def test_gpu_worker_is_one_process_with_an_nvidia_device(compose):
    gpu = compose["services"]["worker-gpu"]
    args = command_of(gpu)
    assert option(args, "--pool", "-P") == "solo" and option(args, "--concurrency", "-c") == "1"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    assert "--beat" not in args  # one beat in the deployment: the cpu worker's
    assert "--beat" in command_of(compose["services"]["worker-cpu"])


def test_dockerfile_installs_pinned_torch_and_the_project():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG TORCH_VERSION=2.13.0" in dockerfile
    assert 'pip install ".[ml,s3]"' in dockerfile
    for folder in ("platform", "workers", "ml", "templates", "static"):
        assert f"COPY {folder} ./{folder}" in dockerfile


def test_worker_healthcheck_reports_broker_and_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["VAR_DIR"] = str(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "workers.healthcheck"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run([sys.executable, "-m", "workers.healthcheck"], cwd=REPO,
                          env={**env, "CELERY_BROKER_URL": "redis://127.0.0.1:9/0"},
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "unhealthy" in down.stderr
