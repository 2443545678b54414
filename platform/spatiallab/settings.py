"""The one settings module. Every deployment runs this file; they differ only by environment values.

With nothing set, the platform runs on an embedded default: SQLite under var/, a Celery broker on the local
filesystem (no server) and media on local disk. DATABASE_URL and CELERY_BROKER_URL switch it to PostgreSQL
and Redis; production security values come from the environment as well (see docs/configuration.md).
"""

import hashlib
import os
from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# Secrets come only from the environment. Without SECRET_KEY a fixed development key is used, and the deploy
# check (spatiallab.core.checks) refuses it, so no production start can run on it.
SECRET_KEY_FROM_ENV = bool(os.environ.get("SECRET_KEY"))
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-not-secret-spatiallab-embedded-default"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "spatiallab.core",
    "spatiallab.accounts",
    "spatiallab.jobs",
    "spatiallab.prompts",
    "spatiallab.generation",
    "spatiallab.verification",
    "spatiallab.datasets",
    "spatiallab.rewards",
    "spatiallab.grpo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "spatiallab.core.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "spatiallab.urls"
WSGI_APPLICATION = "spatiallab.wsgi.application"
ASGI_APPLICATION = "spatiallab.asgi.application"

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
                "spatiallab.accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share one SQLite file: WAL lets readers run beside a writer, IMMEDIATE
    # transactions take the write lock up front (no deadlock on lock upgrade), busy_timeout waits instead of
    # failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that worker processes started by the tests see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    # One test database per VAR_DIR, so that two checkouts (or a CI run beside a developer's run) testing
    # against the same server do not drop each other's test database.
    _checkout = hashlib.sha1(str(VAR_DIR).encode()).hexdigest()[:8]
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_checkout}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling state is shared through it) ------------------------------------------------------
REDIS_CACHE_URL = os.environ.get("CACHE_URL", "")
if REDIS_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}}
else:
    # Shared by every process on this machine (web and workers), unlike the local-memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -----------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# django-ratelimit format: attempts per period, per client IP and per username.
LOGIN_RATE = os.environ.get("LOGIN_RATE", "10/m")
RATELIMIT_USE_CACHE = "default"

# --- Internationalisation -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns at start-up when it is missing
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
if STORAGE_BACKEND == "s3":
    # S3-compatible object storage through django-storages (extra "s3"); bucket, endpoint and credentials
    # come from the AWS_* environment variables that django-storages reads.
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("AWS_STORAGE_BUCKET_NAME", ""),
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        },
    }
# Whitenoise finds files through the finders when collectstatic has not run (tests, runserver).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Local model folders (generators, reward-model backbones); workers resolve a model name below this folder.
MODELS_DIR = Path(os.environ.get("MODELS_DIR", VAR_DIR / "models"))

# --- Abuse limits ---------------------------------------------------------------------------------------
# Whole request bodies (uploads included) above this are refused with 413 before any view reads them.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 2000)

# --- Security (production values come from the environment; docs/configuration.md) ----------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container healthchecks probe over plain HTTP inside the network
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "spatiallab.core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "spatiallab.core.openapi.ApiSchema",  # documents the 400s and 404s too
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_ANON_RATE", "30/min"),
        "user": os.environ.get("API_USER_RATE", "1200/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SpatialLab API",
    "DESCRIPTION": "Prompt sets, jobs and dataset exports of the SpatialLab platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and Redoc are served from the sidecar package: the product works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Rule kinds appear as PerturbationRule.kind and PerturbationEdit.rule_kind; jobs have a "kind" of their own.
    "ENUM_NAME_OVERRIDES": {"RuleKindEnum": "spatiallab.prompts.models.RuleKind",
                            "ExportFormatEnum": "spatiallab.datasets.models.ExportFormat",
                            # Number-of-edits subsets, the same choice set wherever it is asked.
                            "EditSubsetEnum": ["1", "2-3"]},
}

# --- Celery (read by workers.app with the CELERY_ namespace) ---------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_DIR = Path(os.environ.get("BROKER_DIR", VAR_DIR / "broker"))
# The longest job we plan for. Redis redelivers an unacked message after visibility_timeout, so it must be
# longer than any job, or a job that outlives it would be delivered twice (the job row's claim would still
# refuse the second run, but it would sit in a worker for nothing).
JOB_MAX_RUNTIME_SECONDS = env_int("JOB_MAX_RUNTIME_SECONDS", 48 * 3600)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": JOB_MAX_RUNTIME_SECONDS + 3600}
CELERY_RESULT_BACKEND = None  # job state lives in the Job table, not in a result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_DEFAULT_EXCHANGE = "cpu"
CELERY_TASK_DEFAULT_ROUTING_KEY = "cpu"
CELERY_TASK_CREATE_MISSING_QUEUES = False
# Each queue on its own exchange and routing key (a bare Queue("gpu") would share the default "cpu" exchange
# and routing key, which only works because Celery publishes by queue name).
CELERY_TASK_QUEUES = (
    Queue("cpu", Exchange("cpu", type="direct"), routing_key="cpu"),
    Queue("gpu", Exchange("gpu", type="direct"), routing_key="gpu"),
)
CELERY_TASK_ROUTES = {
    "workers.run_cpu_job": {"queue": "cpu"},
    "workers.run_gpu_job": {"queue": "gpu"},
    "workers.requeue_stale_jobs": {"queue": "cpu"},
    "workers.expire_verification_leases": {"queue": "cpu"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-jobs": {"task": "workers.requeue_stale_jobs", "schedule": 30.0},
    "expire-verification-leases": {"task": "workers.expire_verification_leases", "schedule": 30.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Jobs -----------------------------------------------------------------------------------------------
# A running job's worker touches its heartbeat this often; a job whose heartbeat is older than
# JOB_STALE_SECONDS is taken to have lost its worker and is queued again (attempts stay counted).
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 5)
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 90)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)

# --- Verification ---------------------------------------------------------------------------------------
# How long an annotator may take back their last answer.
VERIFICATION_UNDO_SECONDS = env_int("VERIFICATION_UNDO_SECONDS", 30)
# A queue of more pairs than this is built by a job (about 4 s per 100,000 items on PostgreSQL), not in the request.
VERIFICATION_SYNC_ITEMS = env_int("VERIFICATION_SYNC_ITEMS", 100_000)
# The annotator's statements are prepared once per PostgreSQL connection (they cost more to plan than to run);
# turn off behind a pooler in transaction mode (PgBouncer), which does not keep a session's prepared statements.
VERIFICATION_PREPARED_STATEMENTS = env_bool("VERIFICATION_PREPARED_STATEMENTS", True)

# --- Dataset versions and exports ---------------------------------------------------------------------------
# Exports up to this many entries stream straight from the REST endpoint; larger ones run as an export job
# that writes the file through the storage API (docs/datasets.md).
DATASET_STREAM_MAX_ENTRIES = {
    "jsonl": env_int("DATASET_STREAM_MAX_JSONL", 200_000),
    "parquet": env_int("DATASET_STREAM_MAX_PARQUET", 5_000),
    "tar": env_int("DATASET_STREAM_MAX_TAR", 5_000),
}
# Pairs per Parquet row group (images included: about 2 x image size x this many bytes per group).
DATASET_PARQUET_ROW_GROUP = env_int("DATASET_PARQUET_ROW_GROUP", 256)

# --- Reward models ------------------------------------------------------------------------------------------
# Pairs per forward pass when evaluation and scoring jobs score (two images each).
REWARD_SCORE_BATCH = env_int("REWARD_SCORE_BATCH", 16)
# Training processes per run on a GPU worker: 0 = one per visible CUDA device (torchrun when more than one);
# n > 1 launches n processes through torchrun (on a CPU-only worker: gloo).
REWARD_TRAIN_PROCESSES = env_int("REWARD_TRAIN_PROCESSES", 0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

