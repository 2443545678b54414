"""Real Chromium: a researcher ticks two finished evaluations on a run's page, compares them, and sees grouped
accuracy bars with their 95 % intervals (drawn on the canvas) beside the table."""

import pytest

from spatiallab.jobs.models import JobStatus
from spatiallab.rewards.models import RewardCheckpoint, RewardEvaluation, RewardRun
from spatiallab.rewards.services import config_defaults
from tests.dataset_data import build_version, verified_pairs


def _report(overall: float, one: float, many: float) -> dict:
    def cell(accuracy, n):
        return {"accuracy": accuracy, "correct": accuracy * n, "n": n,
                "ci95": [accuracy - 0.1, min(1.0, accuracy + 0.1)]}

    return {"pairs": 40, "overall": cell(overall, 40), "1 edit": cell(one, 20), "2-3 edits": cell(many, 20),
            "by_relation": {"left_right": cell(overall, 30), "count": cell(one, 10)}, "mean_margin": 0.3}


@pytest.fixture
def _rewards_removed_before_flush(transactional_db):
    yield
    RewardRun.objects.all().delete()
    RewardEvaluation.objects.all().delete()


CHART_JS = """
() => {
  const canvas = document.getElementById("comparison-chart");
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {labels: chart.data.labels, bars: chart.data.datasets.map((d) => d.data),
          intervals: chart.data.datasets.map((d) => d.intervals.length), painted};
}
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_two_evaluations_side_by_side_in_chromium(page, live_server, demo_accounts, _rewards_removed_before_flush):
    from spatiallab.accounts.roles import Role
    from tests.browser import log_in

    _, queue = verified_pairs(4, name="browser-eval")
    version = build_version("browser-eval", criteria={"queues": [queue.pk]})
    run = RewardRun.objects.create(name="browser-eval-run", dataset_version=version, dataset_hash=version.content_hash,
                                   base_model="/models/tiny", config=config_defaults(), status=JobStatus.SUCCEEDED)
    for step, report in ((100, _report(0.7, 0.8, 0.6)), (200, _report(0.9, 0.95, 0.85))):
        checkpoint = RewardCheckpoint.objects.create(run=run, step=step, path=f"/nonexistent/step-{step}")
        RewardEvaluation.objects.create(run=run, checkpoint=checkpoint, step=step, checkpoint_path=checkpoint.path,
                                        dataset_version=version, dataset_hash=version.content_hash, split="test",
                                        status=JobStatus.SUCCEEDED, report=report)

    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/reward-runs/{run.pk}/")
    boxes = page.locator("#evaluations-table input[name=ids]")
    assert boxes.count() == 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    with page.expect_navigation():
        page.click("text=Compare the ticked evaluations")
    assert "/dashboard/reward-runs/evaluations/" in page.url
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('comparison-chart'))")
    drawn = page.evaluate(CHART_JS)
    assert drawn["labels"] == ["overall", "1 edit", "2-3 edits", "count", "left_right"]
    assert drawn["bars"] == [[0.7, 0.8, 0.6, 0.8, 0.7], [0.9, 0.95, 0.85, 0.95, 0.9]]
    assert drawn["intervals"] == [5, 5] and drawn["painted"] > 2000
    table = page.locator("#comparison-table")
    assert table.locator("tbody tr").count() == 5
    assert "0.900" in table.locator("tr[data-group=overall]").inner_text()
