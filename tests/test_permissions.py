"""Who may open what: every role against every page and API endpoint, as one explicit matrix.

Roles are Django groups (spatiallab.accounts.roles): annotators reach only the annotation pages, researchers
the dashboard and the researcher API, admins everything including the Django admin. Pages send anonymous
visitors to the login page; the API answers them 401 (token authentication comes first, so the response
carries `WWW-Authenticate: Token`). The API schema and its docs need a login, but no particular role.

Besides the matrix: refused page and API actions leave the database untouched, and the job lists keep a
small, constant number of queries however many jobs there are.
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.prompts.services import prompt_set_create
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "no_role", "annotator", "researcher", "admin")


@dataclass(frozen=True)
class Redirect:
    """A 302 to `location`; LOGIN and ADMIN_LOGIN stand for the login pages with ?next= the requested path."""

    location: str


LOGIN = Redirect("login")
ADMIN_LOGIN = Redirect("admin-login")

# Valid values for the dashboard's demo launch form and the API's job creation.
LAUNCH_FORM = {"limit": 1000, "chunks": 10, "step_delay": 0}
CREATE_PAYLOAD = {"kind": "demo_primes", "params": {"limit": 1000, "chunks": 10}}

# fmt: off
# Where the pages send a role on success; {job} and {prompt_set} are filled with the ids of objects that exist
# in every test.
HOME_LOGIN = Redirect("/login/")
TO_ANNOTATE = Redirect("/annotate/")
TO_DASHBOARD = Redirect("/dashboard/")
TO_JOB = Redirect("/dashboard/jobs/{job}/")
TO_TOKEN = Redirect("/account/token/")

PAGES = [
    # method, url                             anonymous    no_role      annotator    researcher     admin
    ("GET",  "/",                            (HOME_LOGIN,  403,         TO_ANNOTATE, TO_DASHBOARD,  TO_DASHBOARD)),
    ("GET",  "/annotate/",                   (LOGIN,       403,         200,         200,           200)),
    ("GET",  "/dashboard/",                  (LOGIN,       403,         403,         200,           200)),
    ("GET",  "/dashboard/jobs/table/",       (LOGIN,       403,         403,         200,           200)),
    ("GET",  "/dashboard/jobs/{job}/",       (LOGIN,       403,         403,         200,           200)),
    ("GET",  "/dashboard/prompt-sets/",      (LOGIN,       403,         403,         200,           200)),
    ("GET",  "/dashboard/datasets/",         (LOGIN,       403,         403,         200,           200)),
    ("GET",  "/account/token/",              (LOGIN,       200,         200,         200,           200)),
    ("GET",  "/admin/",                      (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN,   200)),
    ("GET",  "/admin/jobs/job/",             (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN,   200)),
    ("GET",  "/admin/datasets/datasetversion/", (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    # Mutating page actions: POST only, dashboard roles only (the token is every user's own).
    ("POST", "/dashboard/jobs/launch/demo/", (LOGIN,       403,         403,         TO_DASHBOARD,  TO_DASHBOARD)),
    ("GET",  "/dashboard/jobs/launch/demo/", (LOGIN,       403,         403,         405,           405)),
    ("POST", "/dashboard/jobs/{job}/cancel/", (LOGIN,      403,         403,         TO_JOB,        TO_JOB)),
    ("POST", "/account/token/rotate/",       (LOGIN,       TO_TOKEN,    TO_TOKEN,    TO_TOKEN,      TO_TOKEN)),
]

API = [
    # method,  url                                  anonymous no_role annotator researcher admin
    ("GET",    "/api/v1/me/",                       (401, 200, 200, 200, 200)),
    ("GET",    "/api/v1/jobs/",                     (401, 403, 403, 200, 200)),
    ("GET",    "/api/v1/jobs/{job}/",               (401, 403, 403, 200, 200)),
    ("POST",   "/api/v1/jobs/",                     (401, 403, 403, 201, 201)),
    ("POST",   "/api/v1/jobs/{job}/cancel/",        (401, 403, 403, 200, 200)),
    ("DELETE", "/api/v1/jobs/{job}/",               (401, 403, 403, 405, 405)),
    ("GET",    "/api/v1/prompt-sets/",              (401, 403, 403, 200, 200)),
    ("GET",    "/api/v1/dataset-versions/",         (401, 403, 403, 200, 200)),
    ("POST",   "/api/v1/dataset-versions/",         (401, 403, 403, 400, 400)),
    ("GET",    "/api/v1/dataset-exports/",          (401, 403, 403, 200, 200)),
    ("POST",   "/api/v1/dataset-exports/",          (401, 403, 403, 400, 400)),
    ("GET",    "/api/v1/prompt-sets/{prompt_set}/", (401, 403, 403, 200, 200)),
    ("POST",   "/api/v1/prompt-sets/",              (401, 403, 403, 400, 400)),
    # The schema and its docs: any logged-in user (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] = IsAuthenticated).
    ("GET",    "/api/v1/schema/",                   (401, 200, 200, 200, 200)),
    ("GET",    "/api/v1/docs/",                     (401, 200, 200, 200, 200)),
    ("GET",    "/api/v1/redoc/",                    (401, 200, 200, 200, 200)),
]
# fmt: on


def _cells(table):
    """One test case per (role, method, url) cell, with a readable id."""
    cells = []
    for method, url, row in table:
        for role, expected in zip(ROLES, row, strict=True):
            cells.append(pytest.param(role, method, url, expected, id=f"{role}-{method}-{url}"))
    return cells


@pytest.fixture
def no_role(db):
    return UserFactory(username="nobody")


@pytest.fixture
def user_for(request):
    """Returns the user acting as `role` (None for anonymous); created only when asked for."""
    fixture_names = {"no_role": "no_role", "annotator": "annotator", "researcher": "researcher",
                     "admin": "admin_user"}

    def get(role):
        return None if role == "anonymous" else request.getfixturevalue(fixture_names[role])

    return get


@pytest.fixture
def objects(db):
    """A queued job and a prompt set that the {job} and {prompt_set} urls point at."""
    owner = UserFactory(username="owner", role="researcher")
    job = JobFactory(created_by=owner)
    prompt_set = prompt_set_create(name="Kitchen", prompts=["a cup left of a plate", "a lamp above a table"],
                                   created_by=owner).prompt_set
    return {"job": job.pk, "prompt_set": prompt_set.pk}


def _page_client(client, user):
    if user is not None:
        client.force_login(user)
    return client


def _api_client(user):
    api = APIClient()
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def _send(client, method, url):
    if url.startswith("/api/"):
        data = CREATE_PAYLOAD if (method, url) == ("POST", "/api/v1/jobs/") else None
        return getattr(client, method.lower())(url, data, format="json")
    if method == "POST":
        return client.post(url, LAUNCH_FORM if url.endswith("/launch/demo/") else {})
    return client.generic(method, url)


def _assert_status(response, expected, path):
    if isinstance(expected, int):
        assert response.status_code == expected, response.content[:500]
        return
    assert response.status_code == 302, response.content[:500]
    if expected == LOGIN:
        location = f"/login/?next={quote(path)}"
    elif expected == ADMIN_LOGIN:
        location = f"/admin/login/?next={quote(path)}"
    else:
        location = expected.location
    assert response["Location"] == location


@pytest.mark.parametrize(("role", "method", "url", "expected"), _cells(PAGES))
def test_page_access(role, method, url, expected, client, user_for, objects):
    url = url.format(**objects)
    if isinstance(expected, Redirect) and "{" in expected.location:
        expected = Redirect(expected.location.format(**objects))
    response = _send(_page_client(client, user_for(role)), method, url)
    _assert_status(response, expected, url)
    if response.status_code == 403 and url != "/":
        assert b"Your role does not give access to this page." in response.content


@pytest.mark.parametrize(("role", "method", "url", "expected"), _cells(API))
def test_api_access(role, method, url, expected, user_for, objects):
    url = url.format(**objects)
    response = _send(_api_client(user_for(role)), method, url)
    assert response.status_code == expected, response.content[:500]
    if expected == 401:
        assert response["WWW-Authenticate"] == "Token"
    if expected == 403:
        assert response.json() == {"detail": "Your role does not give access to this endpoint."}


def test_user_without_role_gets_the_no_role_page_at_home(client, no_role):
    client.force_login(no_role)
    response = client.get("/")
    assert response.status_code == 403
    assert b"Your account has no role" in response.content


def test_navigation_shows_each_role_only_its_own_areas(client, annotator, researcher, admin_user):
    """The links in the top bar follow the same rules as the pages they point at."""

    def nav(user):
        client.force_login(user)
        content = client.get("/account/token/").content.decode()
        return {area for area in ("annotate", "dashboard", "prompt-sets", "api", "admin")
                if f'data-nav="{area}"' in content}

    assert nav(annotator) == {"annotate"}
    assert nav(researcher) == {"annotate", "dashboard", "prompt-sets", "api"}
    assert nav(admin_user) == {"annotate", "dashboard", "prompt-sets", "api", "admin"}


def test_dashboard_links_lead_to_dashboard_pages_not_the_api(client, researcher):
    job = JobFactory()
    client.force_login(researcher)
    table = client.get("/dashboard/jobs/table/").content.decode()
    assert f'<a href="/dashboard/jobs/{job.pk}/">' in table
    assert f'hx-post="/dashboard/jobs/{job.pk}/cancel/"' in table
    card = client.get(f"/dashboard/jobs/{job.pk}/").content.decode()
    assert f'hx-get="/dashboard/jobs/{job.pk}/"' in card
    assert f'action="/dashboard/jobs/{job.pk}/cancel/"' in card
    assert '<a href="/dashboard/prompt-sets/" data-nav="prompt-sets">' in card


# --- Refused actions change nothing -----------------------------------------------------------------------

REFUSED_PAGE_ROLES = [("anonymous", LOGIN), ("no_role", 403), ("annotator", 403)]


@pytest.mark.parametrize(("role", "expected"), REFUSED_PAGE_ROLES, ids=[r for r, _ in REFUSED_PAGE_ROLES])
def test_refused_roles_cannot_launch_a_demo_job_from_the_dashboard(
    role, expected, client, user_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _page_client(client, user_for(role)).post("/dashboard/jobs/launch/demo/", LAUNCH_FORM)
    _assert_status(response, expected, "/dashboard/jobs/launch/demo/")
    assert not Job.objects.exists()
    assert callbacks == []


@pytest.mark.parametrize(("role", "expected"), REFUSED_PAGE_ROLES, ids=[r for r, _ in REFUSED_PAGE_ROLES])
def test_refused_roles_cannot_cancel_a_job_from_the_dashboard(role, expected, client, user_for):
    job = JobFactory()
    url = f"/dashboard/jobs/{job.pk}/cancel/"
    response = _page_client(client, user_for(role)).post(url)
    _assert_status(response, expected, url)
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.finished_at) == (JobStatus.QUEUED, False, None)


def test_researcher_launches_and_cancels_from_the_dashboard(
    client, researcher, django_capture_on_commit_callbacks
):
    """The positive control for the two refusals above: the same requests do act for a researcher."""
    client.force_login(researcher)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/dashboard/jobs/launch/demo/", LAUNCH_FORM)
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.kind, job.created_by, job.status) == ("demo_primes", researcher, JobStatus.QUEUED)
    assert job.params == {"limit": 1000, "chunks": 10, "step_delay": 0.0}
    assert len(callbacks) == 1

    response = client.post(f"/dashboard/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.finished_at is not None


@pytest.mark.parametrize("role", ["anonymous", "no_role", "annotator"])
def test_refused_api_mutations_store_nothing(role, user_for, django_capture_on_commit_callbacks):
    job = JobFactory()
    api = _api_client(user_for(role))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = api.post("/api/v1/jobs/", CREATE_PAYLOAD, format="json")
        cancelled = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert created.status_code == cancelled.status_code == (401 if role == "anonymous" else 403)
    assert list(Job.objects.values_list("pk", flat=True)) == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (JobStatus.QUEUED, False)
    assert callbacks == []


def test_refused_roles_do_not_learn_whether_a_job_exists(user_for):
    """An annotator gets the same 403 for a job that exists and one that does not (no id probing)."""
    job = JobFactory()
    api = _api_client(user_for("annotator"))
    assert api.get(f"/api/v1/jobs/{job.pk}/").status_code == 403
    assert api.get(f"/api/v1/jobs/{job.pk + 1000}/").status_code == 403


# --- Job lists: content and query counts ------------------------------------------------------------------


def _jobs(count):
    """`count` jobs by different users in mixed states, so that any per-row query would show."""
    now = timezone.now()
    statuses = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    jobs = []
    for i in range(count):
        status = statuses[i % len(statuses)]
        running = status == JobStatus.RUNNING
        jobs.append(JobFactory(
            created_by=UserFactory(role="researcher"),
            status=status,
            progress_done=i,
            progress_total=count,
            run_started_at=now - timedelta(seconds=10) if running else None,
            heartbeat_at=now if running else None,
        ))
    return jobs


def test_api_job_list_shows_every_job_to_a_researcher_newest_first(researcher):
    jobs = _jobs(6)
    response = _api_client(researcher).get("/api/v1/jobs/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 6
    assert [row["id"] for row in body["results"]] == [job.pk for job in reversed(jobs)]
    assert [row["created_by"] for row in body["results"]] == [job.created_by.username for job in reversed(jobs)]
    assert {row["status"] for row in body["results"]} == set(JobStatus.values)


def test_dashboard_lists_the_jobs(client, researcher):
    jobs = _jobs(3)
    client.force_login(researcher)
    content = client.get("/dashboard/jobs/table/").content.decode()
    for job in jobs:
        assert f'id="job-{job.pk}" data-status="{job.status}"' in content
        assert job.created_by.username in content


# Pages: session, user, the user's groups (once per request), the jobs with their creators. API: the token with
# its user, the groups, the page's count, the jobs. Any per-row query would add 29 with 30 jobs.
MAX_LIST_QUERIES = 4


@pytest.mark.parametrize("url", ["/dashboard/", "/dashboard/jobs/table/", "/api/v1/jobs/"])
def test_job_lists_use_few_queries_whatever_the_number_of_jobs(url, client, researcher,
                                                               django_assert_max_num_queries):
    if url.startswith("/api/"):
        client = _api_client(researcher)
    else:
        client.force_login(researcher)
    _jobs(1)
    with CaptureQueriesContext(connection) as one_job:
        assert client.get(url).status_code == 200
    assert len(one_job) <= MAX_LIST_QUERIES, [q["sql"] for q in one_job.captured_queries]

    _jobs(29)
    with django_assert_max_num_queries(len(one_job)):
        response = client.get(url)
    assert response.status_code == 200
    # The 30 rows really were rendered (the bound above would hold trivially for an empty page).
    assert response.content.count(b'"created_by"' if url.startswith("/api/") else b'<tr id="job-') == 30
