"""The one settings module: embedded defaults with nothing set, PostgreSQL/Redis from the environment, the
production values that pass the deploy check, and the Celery reliability settings (a misspelt CELERY_* name is
silently ignored by Celery, so the values are asserted on the live app, not on the settings module)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, django
django.setup()
from django.conf import settings
from workers.app import app
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"),
    "broker": app.conf.broker_url, "transport": app.conf.broker_transport_options,
    "media_root": str(settings.MEDIA_ROOT), "storage": settings.STORAGES["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"], "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""

SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "MEDIA_ROOT", "STORAGE_BACKEND", "DEBUG",
                "SECRET_KEY", "ALLOWED_HOSTS", "BROKER_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE")


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update({"VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "spatiallab.settings"}, **extra)
    return env


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def probe(env: dict) -> dict:
    proc = run(["-c", PROBE], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_server(tmp_path):
    var = tmp_path / "var"
    conf = probe(clean_env(tmp_path))
    assert conf["engine"] == "django.db.backends.sqlite3"
    assert conf["name"] == str(var / "db.sqlite3")
    assert conf["broker"] == "filesystem://"
    assert conf["transport"]["data_folder_in"] == str(var / "broker" / "queue")
    assert (var / "broker" / "queue").is_dir() and (var / "broker" / "control").is_dir()
    assert conf["media_root"] == str(var / "media")
    assert conf["storage"] == "django.core.files.storage.FileSystemStorage"
    assert conf["cache"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert conf["debug"] is False


def test_database_broker_and_cache_urls_switch_to_postgres_and_redis(tmp_path):
    conf = probe(clean_env(
        tmp_path,
        DATABASE_URL="postgres://spatial:pw@db.internal:5433/spatiallab",
        CELERY_BROKER_URL="redis://redis.internal:6379/1",
        CACHE_URL="redis://redis.internal:6379/2",
        MEDIA_ROOT=str(tmp_path / "media"),
        ALLOWED_HOSTS="a.example.org, b.example.org",
    ))
    assert conf["engine"] == "django.db.backends.postgresql"
    assert (conf["name"], conf["host"]) == ("spatiallab", "db.internal")
    assert conf["broker"] == "redis://redis.internal:6379/1"
    # Longer than the longest job, or Redis would hand a running job to a second worker.
    assert conf["transport"] == {"visibility_timeout": 48 * 3600 + 3600}
    assert conf["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert conf["media_root"] == str(tmp_path / "media")
    assert conf["allowed_hosts"] == ["a.example.org", "b.example.org"]


def test_s3_storage_is_selected_by_environment(tmp_path):
    conf = probe(clean_env(tmp_path, STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="pairs"))
    assert conf["storage"] == "storages.backends.s3.S3Storage"


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3y-from-the-environment-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    "ALLOWED_HOSTS": "spatiallab.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://spatiallab.example.org",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def test_production_values_pass_the_deploy_check_without_warnings(tmp_path):
    proc = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], clean_env(tmp_path, **PRODUCTION))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues (0 silenced)." in proc.stdout


def test_deploy_check_refuses_a_missing_secret_key(tmp_path):
    env = clean_env(tmp_path, **{k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"})
    proc = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert proc.returncode != 0
    assert "spatiallab.E001" in proc.stderr and "SECRET_KEY" in proc.stderr


def test_deploy_check_flags_debug_in_production(tmp_path):
    proc = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
               clean_env(tmp_path, **{**PRODUCTION, "DEBUG": "1"}))
    assert proc.returncode != 0
    assert "security.W018" in proc.stderr


def test_collectstatic_manifest_serves_htmx_and_styles(tmp_path):
    """Production (DEBUG off) serves hashed static names from the manifest; htmx comes from django-htmx, so
    the product works offline."""
    env = clean_env(tmp_path, STATIC_ROOT=str(tmp_path / "static"))
    proc = run(["manage.py", "collectstatic", "--noinput", "-v", "0"], env)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    assert "css/app.css" in manifest
    assert any(name.startswith("django-htmx/") or name.startswith("django_htmx/") for name in manifest)


class TestCeleryApp:
    """The live Celery app's configuration (engineering.md: the settings that matter for GPU jobs)."""

    @pytest.fixture
    def conf(self):
        from workers.app import app

        return app.conf

    def test_reliability_settings(self, conf):
        assert conf.task_acks_late is True
        assert conf.task_reject_on_worker_lost is True
        assert conf.worker_prefetch_multiplier == 1
        assert conf.task_serializer == "json" and conf.accept_content == ["json"]
        assert conf.task_ignore_result is True

    def test_redis_visibility_timeout_outlives_the_longest_job(self, tmp_path):
        conf = probe(clean_env(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/1"))
        from django.conf import settings

        assert conf["transport"]["visibility_timeout"] > settings.JOB_MAX_RUNTIME_SECONDS >= 24 * 3600

    def test_queues_and_routing(self):
        from workers.app import app

        assert {q.name for q in app.conf.task_queues} == {"cpu", "gpu"}
        assert app.conf.task_create_missing_queues is False
        router = app.amqp.router
        assert router.route({}, "workers.run_cpu_job")["queue"].name == "cpu"
        assert router.route({}, "workers.run_gpu_job")["queue"].name == "gpu"
        assert router.route({}, "workers.requeue_stale_jobs")["queue"].name == "cpu"
        assert router.route({}, "workers.expire_verification_leases")["queue"].name == "cpu"

    def test_every_job_queue_has_a_registered_task(self):
        from spatiallab.jobs.kinds import JOB_KINDS, QUEUE_TASKS
        from workers.app import app

        app.loader.import_default_modules()
        for kind in JOB_KINDS.values():
            assert QUEUE_TASKS[kind.queue] in app.tasks
        from workers.handlers import HANDLERS

        assert set(HANDLERS) == set(JOB_KINDS)

    def test_stale_job_sweep_is_scheduled(self, conf):
        from django.conf import settings

        entry = conf.beat_schedule["requeue-stale-jobs"]
        assert entry["task"] == "workers.requeue_stale_jobs"
        assert entry["schedule"] < settings.JOB_STALE_SECONDS
        assert settings.JOB_HEARTBEAT_SECONDS * 3 <= settings.JOB_STALE_SECONDS

    def test_lease_expiry_sweep_is_scheduled(self, conf):
        from workers.app import app

        app.loader.import_default_modules()
        entry = conf.beat_schedule["expire-verification-leases"]
        assert entry["task"] == "workers.expire_verification_leases" and entry["task"] in app.tasks
        assert entry["schedule"] <= 60  # leases last minutes: a stale one must come back well within one
