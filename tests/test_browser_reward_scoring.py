"""Best-of-n from the dashboard in real Chromium (Playwright) with a real Celery worker: the demo researcher opens
"Score images" from the reward runs page, launches best-of-n with the scene renderer and a tiny trained checkpoint,
watches the progress bar poll while the job waits and runs, and sees the samples ranked best first with a bar
chart of their scores once the page has reloaded itself."""

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.jobs.models import JobStatus
from spatiallab.rewards.models import ScoreRequest
from tests.browser import WATCH_JS, log_in
from tests.factories import GeneratorFactory
from tests.test_reward_scoring import (  # noqa: F401 (trained and _runs_removed_before_flush are fixtures)
    PROMPT,
    _runs_removed_before_flush,
    make_checkpoint,
    trained,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RESULTS_JS = """
() => {
  const figures = [...document.querySelectorAll("#score-results figure.score-result")];
  const canvas = document.getElementById("score-chart");
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  return {
    ranks: figures.map((f) => Number(f.dataset.rank)),
    mus: figures.map((f) => Number(f.dataset.mu)),
    loaded: figures.every((f) => { const img = f.querySelector("img"); return img.complete && img.naturalWidth > 0; }),
    chart: chart ? {type: chart.config.type, values: chart.data.datasets[0].data} : null,
  };
}
"""


def test_researcher_runs_best_of_n_from_the_page_and_sees_the_ranking(page, live_server, demo_accounts, workers,
                                                                      trained, _runs_removed_before_flush):  # noqa: F811
    workers.use_broker("filesystem")  # the job waits in this test's broker until the worker starts below
    checkpoint = make_checkpoint(trained, name="browser-scoring")
    generator = GeneratorFactory(name="Browser renderer")

    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/reward-runs/")
    with page.expect_navigation():
        page.click("text=Score images")
    form = page.locator("#best-of-n-form")
    form.locator("select[name=best-checkpoint]").select_option(str(checkpoint.pk))
    form.locator("select[name=best-generator]").select_option(str(generator.pk))
    form.locator("textarea[name=best-prompt]").fill(PROMPT)
    form.locator("input[name=best-n]").fill("3")
    form.locator("input[name=best-seed]").fill("11")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()

    request = ScoreRequest.objects.get()
    assert page.url == f"{live_server.url}/dashboard/reward-runs/score/{request.pk}/"
    assert (request.n, request.seed, request.generator_id) == (3, 11, generator.pk)
    # No worker yet: the progress block polls.
    page.locator('#score-progress[data-status="queued"] .progress').wait_for()
    assert page.locator("#score-progress").get_attribute("hx-trigger") == "every 1s"
    page.evaluate(WATCH_JS)

    workers.start(queues="gpu")
    page.locator("#score-results").wait_for(timeout=150_000)
    assert page.evaluate("window.__noReload") is None  # htmx's HX-Refresh reloaded the finished page
    request.refresh_from_db()
    assert request.status == JobStatus.SUCCEEDED
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('score-chart'))")
    page.wait_for_function("() => [...document.querySelectorAll('#score-results img')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    shown = page.evaluate(RESULTS_JS)
    assert shown["ranks"] == [1, 2, 3] and shown["loaded"]
    assert shown["mus"] == sorted(shown["mus"], reverse=True)
    assert shown["mus"] == pytest.approx([row["mu"] for row in request.results], abs=1e-9)
    assert shown["chart"]["type"] == "bar" and shown["chart"]["values"] == pytest.approx(shown["mus"], abs=1e-9)
    assert page.locator("#score-status").inner_text() == "Succeeded"
    assert page.errors == []
