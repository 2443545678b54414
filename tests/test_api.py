"""The REST API (/api/v1/): token authentication, the job endpoints, filtering, pagination, the OpenAPI schema
and throttling.

Bad payloads get a 400 that names the offending field and store nothing; a created job is enqueued once, when
its transaction commits (captured here, never sent: no worker runs in these tests).
"""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle

from spatiallab.accounts.services import token_rotate
from spatiallab.jobs.models import Job, JobStatus
from tests.factories import JobFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
JOBS = "/api/v1/jobs/"


# --- Token authentication ---------------------------------------------------------------------------------


def _token_on_page(client) -> str:
    page = client.get("/account/token/").content.decode()
    return re.search(r'<code id="api-token">([0-9a-f]{40})</code>', page).group(1)


def test_token_from_the_token_page_authenticates_api_requests(client, researcher):
    client.force_login(researcher)
    assert b"You have no token yet." in client.get("/account/token/").content
    response = client.post("/account/token/rotate/")
    assert (response.status_code, response["Location"]) == (302, "/account/token/")
    key = _token_on_page(client)
    assert key == Token.objects.get(user=researcher).key

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "res"


def test_rotating_on_the_token_page_invalidates_the_old_key(client, researcher):
    client.force_login(researcher)
    client.post("/account/token/rotate/")
    old = _token_on_page(client)
    client.post("/account/token/rotate/")
    new = _token_on_page(client)
    assert new != old
    assert Token.objects.filter(user=researcher).count() == 1

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    api.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api.get("/api/v1/me/").status_code == 200


def test_token_rotate_service_invalidates_the_old_key(researcher):
    old = token_rotate(user=researcher).key
    new = token_rotate(user=researcher).key
    assert new != old
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert api.get("/api/v1/me/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api.get("/api/v1/me/").json()["username"] == "res"


def test_token_rotation_is_post_only_and_needs_a_login(client, researcher):
    response = client.post("/account/token/rotate/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/account/token/rotate/")
    assert not Token.objects.exists()
    client.force_login(researcher)
    assert client.get("/account/token/rotate/").status_code == 405
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Token " + "0" * 40, "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token abc def", "Invalid token header. Token string should not contain spaces."),
        # Another scheme is not ours to read: the request stays anonymous.
        ("Bearer " + "0" * 40, "Authentication credentials were not provided."),
    ],
    ids=["unknown-key", "no-key", "spaces", "other-scheme"],
)
def test_bad_authorization_header_gets_401(header, detail, researcher):
    token_rotate(user=researcher)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == "Token"


def test_token_of_a_deactivated_user_gets_401(researcher):
    api = token_client(researcher)
    researcher.is_active = False
    researcher.save(update_fields=["is_active"])
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_token_requests_need_no_csrf_token_but_session_requests_do(researcher):
    """A token is not sent by the browser on its own, so token requests skip CSRF; session requests must not."""
    payload = {"kind": "demo_primes", "params": {"limit": 100, "chunks": 2}}
    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_rotate(user=researcher).key}")
    assert api.post(JOBS, payload, format="json").status_code == 201

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(researcher)
    assert browser.get("/api/v1/me/").status_code == 200  # reads are fine with the session
    response = browser.post(JOBS, payload, format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("CSRF Failed")
    assert Job.objects.count() == 1


# --- /me/ -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "username", "roles"),
    [
        (None, "nobody", []),
        ("annotator", "ann", ["annotator"]),
        ("researcher", "res", ["researcher"]),
        ("admin", "boss", ["admin", "annotator", "researcher"]),  # a superuser holds every role
    ],
    ids=["no-role", "annotator", "researcher", "admin"],
)
def test_me_returns_username_and_roles(role, username, roles):
    user = UserFactory(username=username, role=role)
    response = token_client(user).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json() == {"username": username, "roles": roles}


# --- Creating jobs ----------------------------------------------------------------------------------------


def test_create_demo_job_returns_201_with_the_job_and_enqueues_it_once(
    api, researcher, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(JOBS, {"kind": "demo_primes", "params": {"limit": 5000, "chunks": 5}}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    body = response.json()
    assert body["id"] == job.pk
    assert {key: body[key] for key in (
        "kind", "queue", "params", "status", "progress_done", "progress_total", "percent", "eta_seconds",
        "rate_per_second", "result", "error", "attempts", "max_attempts", "cancel_requested", "created_by",
        "started_at", "finished_at",
    )} == {
        "kind": "demo_primes",
        "queue": "cpu",
        "params": {"limit": 5000, "chunks": 5, "step_delay": 0.0},  # defaults filled in
        "status": "queued",
        "progress_done": 0,
        "progress_total": 0,
        "percent": 0.0,
        "eta_seconds": None,
        "rate_per_second": None,
        "result": {},
        "error": "",
        "attempts": 0,
        "max_attempts": django_settings.JOB_MAX_ATTEMPTS,
        "cancel_requested": False,
        "created_by": "res",
        "started_at": None,
        "finished_at": None,
    }
    assert job.created_by == researcher
    assert job.params == body["params"]

    # Exactly one callback, and it sends this job to the cpu queue's task.
    assert len(callbacks) == 1
    # What the callback sends is checked against the real broker in test_job_services.py.


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"kind": "demo_primes", "params": {"chunks": -1}}, "params",
         "chunks: Ensure this value is greater than or equal to 1."),
        ({"kind": "demo_primes", "params": {"chunks": 10_001}}, "params",
         "chunks: Ensure this value is less than or equal to 10000."),
        ({"kind": "demo_primes", "params": {"limit": 100, "chunks": 101}}, "params",
         "chunks: must not exceed limit."),
        ({"kind": "demo_primes", "params": {"limit": 5}}, "params",
         "limit: Ensure this value is greater than or equal to 10."),
        ({"kind": "demo_primes", "params": {"limit": "many"}}, "params", "limit: A valid integer is required."),
        ({"kind": "demo_primes", "params": {"step_delay": 11}}, "params",
         "step_delay: Ensure this value is less than or equal to 10.0."),
        ({"kind": "demo_primes", "params": [1, 2]}, "params", 'Expected a dictionary of items but got type "list".'),
        ({"kind": "no_such_kind"}, "kind", '"no_such_kind" is not a valid choice.'),
        ({"params": {}}, "kind", "This field is required."),
        ({"kind": "demo_primes", "params": {"limt": 50}}, "params", "limt: unknown parameter."),
    ],
    ids=["chunks-negative", "chunks-above-max", "chunks-above-limit", "limit-too-small", "limit-not-a-number",
         "step-delay-too-long", "params-not-an-object", "unknown-kind", "kind-missing",
         "misspelt-param"],
)
def test_invalid_job_payload_gets_400_naming_the_field_and_stores_nothing(
    payload, field, message, api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(JOBS, payload, format="json")
    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert not Job.objects.exists()
    assert callbacks == []


def test_malformed_json_gets_400_and_stores_nothing(api):
    response = api.generic("POST", JOBS, '{"kind": "demo_primes",', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert not Job.objects.exists()


# --- Cancelling jobs --------------------------------------------------------------------------------------


def test_cancel_a_queued_job_cancels_it_at_once(api):
    job = JobFactory()
    response = api.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["cancel_requested"]) == (job.pk, "cancelled", True)
    assert body["finished_at"] is not None
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (JobStatus.CANCELLED, True)
    assert job.finished_at is not None


def test_cancel_a_running_job_asks_its_worker_to_stop(api):
    job = JobFactory(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    response = api.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.finished_at) == (JobStatus.RUNNING, True, None)


def test_cancel_a_finished_job_changes_nothing(api):
    finished = timezone.now() - timedelta(minutes=5)
    job = JobFactory(status=JobStatus.SUCCEEDED, finished_at=finished, result={"prime_count": 4})
    response = api.post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("succeeded", False)
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.finished_at) == (JobStatus.SUCCEEDED, False, finished)


def test_cancel_is_post_only_and_unknown_jobs_are_404(api):
    job = JobFactory()
    assert api.get(f"{JOBS}{job.pk}/cancel/").status_code == 405
    assert api.post(f"{JOBS}{job.pk + 1000}/cancel/").status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


# --- Listing: filters and pagination ----------------------------------------------------------------------


@pytest.fixture
def mixed_jobs(db):
    """Jobs of two kinds in several states, oldest first."""
    rows = [
        ("demo_primes", JobStatus.QUEUED),
        ("demo_primes", JobStatus.RUNNING),
        ("demo_primes", JobStatus.SUCCEEDED),
        ("export", JobStatus.QUEUED),
        ("export", JobStatus.FAILED),
        ("export", JobStatus.SUCCEEDED),
    ]
    start = timezone.now() - timedelta(hours=1)
    return [JobFactory(kind=kind, status=status, created_at=start + timedelta(minutes=i))
            for i, (kind, status) in enumerate(rows)]


def _ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [5, 4, 3, 2, 1, 0]),
        ("?status=queued", [3, 0]),
        ("?status=queued&status=running", [3, 1, 0]),
        ("?kind=export", [5, 4, 3]),
        ("?kind=demo_primes&status=succeeded", [2]),
        ("?kind=generate", []),
        ("?status=cancelled", []),
    ],
)
def test_job_list_filters_by_status_and_kind(query, expected, api, mixed_jobs):
    response = api.get(JOBS + query)
    assert _ids(response) == [mixed_jobs[i].pk for i in expected]
    assert response.json()["count"] == len(expected)


def test_job_list_refuses_an_unknown_status(api, mixed_jobs):
    response = api.get(JOBS + "?status=bogus")
    assert response.status_code == 400
    assert response.json() == {"status": ["Select a valid choice. bogus is not one of the available choices."]}


def test_job_list_pagination_shape(api, mixed_jobs):
    newest_first = [job.pk for job in reversed(mixed_jobs)]
    first = api.get(JOBS + "?limit=4")
    assert set(first.json()) == {"count", "next", "previous", "results"}
    assert first.json()["count"] == 6
    assert _ids(first) == newest_first[:4]
    assert first.json()["next"] == "http://testserver/api/v1/jobs/?limit=4&offset=4"
    assert first.json()["previous"] is None

    second = api.get(first.json()["next"])
    assert _ids(second) == newest_first[4:]
    assert second.json()["next"] is None
    assert second.json()["previous"] == "http://testserver/api/v1/jobs/?limit=4"

    # Filters stay in the page links.
    filtered = api.get(JOBS + "?kind=export&limit=1")
    assert filtered.json()["count"] == 3
    assert "kind=export" in filtered.json()["next"]


def test_job_list_default_page_size_is_fifty(api):
    JobFactory.create_batch(51)
    body = api.get(JOBS).json()
    assert (body["count"], len(body["results"])) == (51, 50)
    assert body["next"] == "http://testserver/api/v1/jobs/?limit=50&offset=50"


def test_job_retrieve_returns_one_job(api, mixed_jobs):
    job = mixed_jobs[4]
    response = api.get(f"{JOBS}{job.pk}/")
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["kind"], response.json()["status"]) == (job.pk, "export", "failed")
    assert api.get(f"{JOBS}{job.pk + 1000}/").status_code == 404


# --- OpenAPI schema and docs ------------------------------------------------------------------------------


def test_schema_is_a_valid_openapi_document_for_an_authenticated_user(api):
    response = api.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 meta-schema
    assert schema["info"]["title"] == "SpatialLab API"
    assert {
        "/api/v1/me/", "/api/v1/jobs/", "/api/v1/jobs/{id}/", "/api/v1/jobs/{id}/cancel/",
        "/api/v1/prompt-sets/", "/api/v1/prompt-sets/{id}/",
    } <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    create = schema["paths"]["/api/v1/jobs/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobCreate"}
    assert set(create["responses"]) == {"201", "400"}  # bad params: 400 naming them (spatiallab.core.openapi)
    status_filter = next(p for p in schema["paths"]["/api/v1/jobs/"]["get"]["parameters"] if p["name"] == "status")
    assert status_filter["schema"]["items"]["enum"] == sorted(JobStatus.values)


def test_schema_defaults_to_yaml(api):
    response = api.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/jobs/" in schema["paths"]


@pytest.mark.parametrize("url", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_docs_pages_load_their_scripts_from_the_sidecar_not_a_cdn(url, api):
    response = api.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts, page
    assert all(src.startswith("/static/drf_spectacular_sidecar/") for src in scripts), scripts
    assert "cdn.jsdelivr.net" not in page
    assert "googleapis" not in page  # the product works offline
    assert "/api/v1/schema/" in page


def test_spectacular_command_validates_the_schema_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "spatiallab.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr, result.stderr
    schema = yaml.safe_load(out.read_text())
    assert schema["info"]["title"] == "SpatialLab API"
    assert {"/api/v1/jobs/", "/api/v1/prompt-sets/", "/api/v1/perturb/"} <= set(schema["paths"])


# --- Throttling -------------------------------------------------------------------------------------------


@pytest.fixture
def low_user_rate(settings, monkeypatch):
    """Three requests a minute per user.

    DRF copies DEFAULT_THROTTLE_RATES into SimpleRateThrottle.THROTTLE_RATES when rest_framework.throttling is
    first imported; overriding the setting alone (which reloads api_settings) leaves the throttles on the old
    rates, so the class attribute is patched as well.
    """
    rates = {"anon": "100/min", "user": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    return 3


def test_user_is_throttled_after_the_rate_with_retry_after(api, low_user_rate):
    # The budget is per user, shared across endpoints.
    assert [api.get(url).status_code for url in ("/api/v1/me/", JOBS, "/api/v1/me/")] == [200, 200, 200]
    response = api.get("/api/v1/me/")
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert response.json() == {"detail": f"Request was throttled. Expected available in {retry_after} seconds."}


def test_throttled_job_creation_stores_nothing(api, low_user_rate):
    payload = {"kind": "demo_primes", "params": {"limit": 100, "chunks": 2}}
    statuses = [api.post(JOBS, payload, format="json").status_code for _ in range(low_user_rate + 1)]
    assert statuses == [201] * low_user_rate + [429]
    assert Job.objects.count() == low_user_rate


def test_throttle_budget_is_per_user(api, annotator, low_user_rate):
    for _ in range(low_user_rate):
        api.get("/api/v1/me/")
    assert api.get("/api/v1/me/").status_code == 429
    assert token_client(annotator).get("/api/v1/me/").status_code == 200


def test_default_user_rate_is_not_throttling_ordinary_use(api):
    """Without the override, a burst of requests (a dashboard script polling) passes."""
    assert SimpleRateThrottle.THROTTLE_RATES["user"] == django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"]
    assert {api.get("/api/v1/me/").status_code for _ in range(40)} == {200}


def test_page_size_has_a_ceiling(api, researcher):
    from spatiallab.core.pagination import Pagination

    JobFactory.create_batch(3)
    response = api.get("/api/v1/jobs/", {"limit": 100_000})
    assert response.status_code == 200 and response.json()["count"] == 3
    request = APIRequestFactory().get("/api/v1/jobs/", {"limit": 100_000})
    assert Pagination().get_limit(Request(request)) == 500
