"""The dataset version pages in real Chromium (Playwright) against pytest-django's live server, with a real
Celery worker running the jobs.

The demo researcher fills in the create form (the count of matching verified pairs follows the criteria through
htmx; bad split ratios are answered with the error on their field and nothing stored), creates a version and
watches its build job's progress until a worker has built it: the page then reloads itself and draws the card's
plots. The JSONL link downloads a file whose SHA-256 is the content hash; a Parquet export too large to stream
is made by an export job whose progress the download cell follows until it offers the file with its SHA-256.
"""

import hashlib
from pathlib import Path

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportStatus, VersionStatus
from spatiallab.verification.models import Answer
from tests.browser import WATCH_JS, log_in
from tests.dataset_data import verified_pairs

# Transactional: the live server thread and the worker process see only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLOTS = ["split", "relation_kind", "n_edits", "generator", "category", "agreement"]
# Every plot's canvas holds a drawn chart with painted pixels and the data it was given.
CHART_JS = """
(name) => {
  const canvas = document.querySelector(`canvas[data-plot="${name}"]`);
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const meta = chart.getDatasetMeta(0);
  return {type: chart.config.type, labels: chart.data.labels, data: chart.data.datasets[0].data, painted,
          bars: meta.data.length};
}
"""


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.worker
def test_researcher_builds_a_version_from_the_form_sees_its_plots_and_downloads_it(page, live_server,
                                                                                  demo_accounts, workers,
                                                                                  settings):
    # Pair 9 is rejected by its annotators: 11 verified pairs.
    pairs, queue = verified_pairs(12, name="browser-dataset",
                                  answers_for=lambda pairs: {pairs[9].pk: [Answer.NEITHER] * 3})
    settings.DATASET_STREAM_MAX_ENTRIES = {"jsonl": 200_000, "parquet": 0, "tar": 0}
    workers.use_broker("filesystem")  # jobs wait in this test's broker until the worker starts below

    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/datasets/")
    assert "No dataset versions yet" in page.locator("#versions").inner_text()
    page.evaluate(WATCH_JS)

    # The live count follows the criteria.
    form = page.locator("#version-create-form")
    assert "Pick a verification queue" in page.locator("#candidate-count").inner_text()
    form.locator("select[name=queues]").select_option(str(queue.pk))
    page.locator('#candidate-count[data-count="11"]').wait_for()
    assert "11 verified pairs match" in page.locator("#candidate-count").inner_text()
    n_one = sum(1 for pair in pairs if pair.n_edits == 1 and pair != pairs[9])
    form.locator("input[name=n_edits][value='1']").check()
    page.locator(f'#candidate-count[data-count="{n_one}"]').wait_for()
    form.locator("input[name=n_edits][value='']").check()
    page.locator('#candidate-count[data-count="11"]').wait_for()

    # Ratios that do not add up to 1: the 400 answer with the error on the field is swapped in, nothing stored.
    form.locator("input[name=name]").fill("browser-v1")
    form.locator("textarea[name=description]").fill("Made in the browser test.")
    form.locator("input[name=ratios_train]").fill("0.5")
    form.locator("button[name=create]").click()
    page.locator("#id_ratios-errors").wait_for()
    assert page.locator("#id_ratios-errors").inner_text() == (
        "Split ratios: Ratios must add up to 1 (they add up to 0.7).")
    assert not DatasetVersion.objects.exists()
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []
    assert form.locator("input[name=name]").input_value() == "browser-v1"  # the answers are kept
    assert form.locator("select[name=queues]").evaluate("(s) => [...s.selectedOptions].map((o) => o.value)") == [
        str(queue.pk)]
    form.locator("input[name=ratios_train]").fill("0.8")
    with page.expect_navigation():
        form.locator("button[name=create]").click()

    version = DatasetVersion.objects.get(name="browser-v1")
    assert page.url == f"{live_server.url}/dashboard/datasets/{version.pk}/"
    assert version.status == VersionStatus.BUILDING
    # No worker yet: the build job's progress bar waits, polling.
    page.locator('#version-build[data-status="building"] .progress').wait_for()
    assert page.locator("#version-build").get_attribute("hx-trigger") == "every 2s"
    page.evaluate(WATCH_JS)

    # The worker builds it; the polling block sees it frozen and the page reloads itself to show the result.
    workers.start(queues="cpu")
    page.locator("#card").wait_for(timeout=90_000)
    assert page.evaluate("window.__noReload") is None  # a fresh page: htmx's HX-Refresh reloaded it
    version.refresh_from_db()
    assert version.status == VersionStatus.FROZEN and version.entry_count == 11
    assert page.locator("#content-hash").inner_text() == version.content_hash
    assert page.locator('[data-version-status="frozen"]').first.inner_text() == "Frozen"

    # Every plot of the card is drawn, with the card's numbers.
    page.wait_for_function("(names) => names.every((n) => window.Chart && window.Chart.getChart("
                           "document.querySelector(`canvas[data-plot=\"${n}\"]`)))", arg=PLOTS)
    assert all(url.startswith(live_server.url) for url in page.requests), page.requests  # no CDN
    for name in PLOTS:
        chart = page.evaluate(CHART_JS, name)
        assert chart["type"] == "bar" and chart["data"] and sum(chart["data"]) > 0, (name, chart)
        assert dict(zip(chart["labels"], chart["data"], strict=True)) == version.card[name], (name, chart)
        assert chart["painted"] > 500 and chart["bars"] == len(chart["data"]), (name, chart)
    split = page.evaluate(CHART_JS, "split")
    assert split["labels"] == ["train", "validation", "test"] and sum(split["data"]) == 11
    assert page.locator(f'#queue-agreement tr[data-queue="{queue.pk}"] [data-col="verdicts"]').inner_text() == "36"
    assert "## How the entries were selected" in page.locator("#readme-text").inner_text()

    # The JSONL link streams the canonical lines: the file's SHA-256 is the content hash.
    with page.expect_download() as info:
        page.locator("#download-jsonl-all a[data-download=stream]").click()
    download = info.value
    assert download.suggested_filename == f"browser-v1-{version.content_hash[:12]}.jsonl"
    assert _sha256(download.path()) == version.content_hash

    # Parquet is "too large to stream" here: the Export button starts a job, the cell follows its progress and
    # then offers the file with its SHA-256.
    page.evaluate(WATCH_JS)
    cell = page.locator("#download-parquet-all")
    assert cell.get_attribute("data-mode") == "export"
    cell.locator("button[name=export]").click()
    page.locator('#download-parquet-all[data-export-status="building"], '
                 '#download-parquet-all a[data-download=export]').first.wait_for()
    page.locator("#download-parquet-all a[data-download=export]").wait_for(timeout=90_000)
    export = DatasetExport.objects.get(version=version, format="parquet", split="")
    assert export.status == ExportStatus.READY
    assert page.locator("#download-parquet-all code.sha256").inner_text() == export.sha256
    with page.expect_download() as info:
        page.locator("#download-parquet-all a[data-download=export]").click()
    assert _sha256(info.value.path()) == export.sha256
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []

    # "New version from this one" opens the form with this version's criteria and ratios, and it as parent.
    with page.expect_navigation():
        page.locator("#new-from-this").click()
    form = page.locator("#version-create-form")
    assert form.locator("select[name=parent]").input_value() == str(version.pk)
    assert form.locator("select[name=queues]").evaluate("(s) => [...s.selectedOptions].map((o) => o.value)") == [
        str(queue.pk)]
    assert form.locator("input[name=ratios_train]").input_value() == "0.8"
    page.locator('#candidate-count[data-count="11"]').wait_for()

    bad_request = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert page.errors == [bad_request]  # the ratios error above, and nothing else
