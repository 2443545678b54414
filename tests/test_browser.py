"""The web UI in real Chromium (Playwright), against pytest-django's live server.

The demo researcher logs in through the form, launches the demo job from the dashboard and watches its
progress bar reach 100 % through htmx polling (a real Celery worker runs the job, no page reload); the demo
annotator gets no access to the dashboard; an anonymous visitor is sent to the login page. The accounts are
the ones `seed_demo` creates, with the credentials it prints.
"""


import pytest

from spatiallab.accounts.roles import Role
from tests.browser import TIMEOUT_MS, log_in

# Transactional: the live server thread and the worker process see only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# Small enough to finish in a few seconds, with enough steps that the bar visibly passes through values
# between 0 and 100 while the table polls once a second. The prime count below 200 000 is 17 984.
DEMO_PARAMS = {"limit": "200000", "chunks": "20", "step_delay": "0.15"}
PRIMES_BELOW_LIMIT = 17984

# Records every value the progress bar of every job row shows after each htmx swap, and every failed htmx
# request, so the test sees the intermediate values even if it polls the page more slowly than htmx does.
RECORDER_JS = """
() => {
  window.__noReload = true;
  window.__seen = {};
  window.__htmxErrors = [];
  const record = () => {
    for (const row of document.querySelectorAll("tr[id^='job-']")) {
      const bar = row.querySelector("[role=progressbar]");
      if (!bar) continue;
      (window.__seen[row.id] ||= []).push(Number(bar.getAttribute("aria-valuenow")));
    }
  };
  document.body.addEventListener("htmx:afterSettle", record);
  for (const name of ["htmx:responseError", "htmx:sendError", "htmx:swapError", "htmx:targetError"]) {
    document.body.addEventListener(name, (event) => {
      const xhr = event.detail && event.detail.xhr;
      window.__htmxErrors.push(name + (xhr ? " " + xhr.status + " " + xhr.responseURL : ""));
    });
  }
  record();
}
"""


@pytest.mark.worker
def test_researcher_launches_demo_job_and_watches_it_reach_100_percent(
    page, live_server, demo_accounts, workers
):
    workers.start()
    log_in(page, live_server, Role.RESEARCHER)
    # The start page of a researcher is the dashboard; open it explicitly all the same.
    response = page.goto(f"{live_server.url}/dashboard/")
    assert response.status == 200
    assert page.locator("nav [data-nav=dashboard]").is_visible()
    assert page.locator("#jobs-table").inner_text().startswith("No jobs yet")
    page.evaluate(RECORDER_JS)

    form = page.locator("#launch-demo")
    for name, value in DEMO_PARAMS.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button[name=launch]").click()
    # htmx swaps the form in place and the table reloads on the HX-Trigger; nothing navigates.
    page.locator("#launch-demo [role=status]").filter(has_text="Job queued.").wait_for()

    row = page.locator("tr[id^='job-']")
    row.wait_for()
    assert row.count() == 1
    row_id = row.get_attribute("id")
    bar = row.locator("[role=progressbar]")
    assert bar.is_visible()

    page.locator(f"#{row_id}[data-status=succeeded] [role=progressbar][aria-valuenow='100']").wait_for(
        timeout=TIMEOUT_MS
    )
    assert page.evaluate("window.__noReload") is True, "the page reloaded instead of updating through htmx"
    bar = page.locator(f"#{row_id} [role=progressbar]")
    assert bar.get_attribute("data-percent") == "100"
    assert bar.locator(".bar").get_attribute("style").replace(" ", "") == "width:100.0%"
    assert bar.inner_text().strip() == "100% · 20/20"
    assert page.locator(f"#{row_id} .badge").inner_text() == "Succeeded"

    seen = page.evaluate("window.__seen")[row_id]
    assert seen[-1] == 100
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert any(0 < value < 100 for value in seen), f"no intermediate progress was shown: {seen}"
    # Once no job is active, the table stops polling.
    assert page.locator("#jobs-table").get_attribute("hx-trigger") is None

    assert page.evaluate("window.__htmxErrors") == []
    assert page.errors == []

    # The result is shown on the job's page, which the row links to.
    with page.expect_navigation():
        page.locator(f"#{row_id} a").first.click()
    assert page.url == f"{live_server.url}/dashboard/jobs/{row_id.removeprefix('job-')}/"
    assert page.locator("#job-card .badge").inner_text() == "Succeeded"
    assert page.locator("#job-card [role=progressbar]").get_attribute("aria-valuenow") == "100"
    result = page.locator("#job-result").inner_text()
    assert f"'prime_count': {PRIMES_BELOW_LIMIT}" in result
    assert "'limit': 200000" in result
    assert page.errors == []


def test_annotator_gets_no_access_to_the_dashboard(page, live_server, demo_accounts):
    log_in(page, live_server, Role.ANNOTATOR)
    assert page.url == f"{live_server.url}/annotate/"
    nav = page.locator("nav.nav")
    assert nav.locator("[data-nav=annotate]").is_visible()
    assert nav.locator("[data-nav=dashboard]").count() == 0
    assert "Jobs" not in nav.inner_text()

    response = page.goto(f"{live_server.url}/dashboard/")
    assert response.status == 403
    assert page.locator("main h1").inner_text() == "No access"
    assert page.get_by_text("Your role does not give access to this page.").is_visible()
    assert page.locator("nav [data-nav=dashboard]").count() == 0
    assert page.locator("#launch-demo").count() == 0

    # The htmx fragments behind the dashboard are closed too, not only the page.
    for path in ("/dashboard/jobs/table/", "/dashboard/prompt-sets/"):
        assert page.request.get(f"{live_server.url}{path}").status == 403, path

    response = page.goto(f"{live_server.url}/annotate/")
    assert response.status == 200
    assert page.locator("main h1").inner_text() == "Your verification queue"


def test_logged_out_dashboard_redirects_to_login(page, live_server, demo_accounts):
    response = page.goto(f"{live_server.url}/dashboard/")
    assert response.status == 200
    assert response.request.redirected_from is not None
    assert response.request.redirected_from.url == f"{live_server.url}/dashboard/"
    assert page.url == f"{live_server.url}/login/?next=/dashboard/"
    assert page.locator("main h1").inner_text() == "Log in"
    assert page.locator("#launch-demo").count() == 0
