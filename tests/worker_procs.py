"""Real Celery workers for tests: subprocesses running `celery -A workers.app worker` against the test
database and a chosen broker (the embedded filesystem broker or Redis)."""

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu.pools
import pytest
from django.conf import settings
from django.db import connection

from workers.app import app

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def database_url() -> str:
    """The URL of the *test* database, for the worker process."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    host = f"{auth}@" if auth else ""
    return f"postgres://{host}{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def reset_connection_pools() -> None:
    """Drops every cached broker connection and producer, so the next send uses the current broker_url.

    kombu keeps producer pools in a global registry keyed by connection; a pool closed by one test would
    otherwise be handed to the next test that uses the same URL."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    kombu.pools.reset()
    app.amqp._producer_pool = None


def broker_state() -> tuple:
    return os.environ.get("CELERY_BROKER_URL"), app.conf.broker_url, app.conf.broker_transport_options


def point_test_process_at(url: str, options: dict) -> None:
    """Points the test process's Celery app (the one job_create sends through) at a broker.

    Celery reads the CELERY_BROKER_URL environment variable before its own broker_url setting, so both change.
    """
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
    app.conf.broker_write_url = None
    app.conf.broker_read_url = None
    reset_connection_pools()


def restore_broker_state(state: tuple) -> None:
    env_url, url, options = state
    if env_url is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = env_url
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    reset_connection_pools()


class BrokerConfig:
    """A broker for one test: its URL and options, and the environment a worker process needs to use it."""

    def __init__(self, kind: str, tmp_path: Path):
        self.kind = kind
        if kind == "filesystem":
            folder = tmp_path / f"broker-{uuid.uuid4().hex[:8]}"
            for sub in ("queue", "control"):
                (folder / sub).mkdir(parents=True)
            self.url = "filesystem://"
            self.env = {"CELERY_BROKER_URL": self.url, "BROKER_DIR": str(folder)}
            self.options = {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "control_folder": str(folder / "control"),
            }
        elif kind == "redis":
            if not redis_available():
                pytest.skip(f"Redis is not reachable at {REDIS_URL}")
            self.url = REDIS_URL
            self.env = {"CELERY_BROKER_URL": self.url}
            self.options = {"visibility_timeout": 48 * 3600}
        else:
            raise ValueError(kind)

    def apply(self) -> None:
        point_test_process_at(self.url, self.options)

    def purge(self) -> None:
        with app.connection_for_write() as conn:
            for queue in ("cpu", "gpu"):
                conn.default_channel.queue_purge(queue)


def _die_with_parent() -> None:
    """Runs in the worker child before exec: the kernel kills it when the test process dies, so a test run
    that is itself killed leaves no worker behind holding the test database (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no cleanup, no ack."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerPool:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[WorkerProcess] = []
        self.broker: BrokerConfig | None = None
        self._saved = broker_state()

    def use_broker(self, kind: str) -> BrokerConfig:
        self.broker = BrokerConfig(kind, self.tmp_path)
        self.broker.apply()
        self.broker.purge()
        return self.broker

    def start(self, queues: str = "cpu,gpu", extra_env: dict | None = None, timeout: float = 60) -> WorkerProcess:
        if self.broker is None:
            self.use_broker("filesystem")
        log = self.tmp_path / f"worker-{len(self.procs)}.log"
        env = {
            **os.environ,
            **self.broker.env,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "JOB_HEARTBEAT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        cmd = [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "--pool", "solo",
            "--concurrency", "1", "--without-gossip", "--without-mingle", "-n", f"test{uuid.uuid4().hex[:6]}@%h",
            "--loglevel", "INFO",
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        worker = WorkerProcess(proc, log)
        self.procs.append(worker)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in worker.output():
                return worker
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.output()}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{worker.output()}")

    def stop_all(self) -> None:
        for worker in self.procs:
            worker.stop()
        restore_broker_state(self._saved)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
