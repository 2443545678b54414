"""The researcher's queue pages in real Chromium (Playwright) against pytest-django's live server.

The demo researcher creates a queue through the form (the matching-pair count follows the selection through
htmx; a bad quorum is answered with the error on its field), lands on its page, and once annotators have
answered (through the services, as the annotation pages would) the statistics page draws its plots: the Cohen's
kappa heatmap with a cell per pair of annotators, the per-annotator bars, throughput over time and the answers.
Then they adjudicate disputed items with the keyboard.
"""

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.verification.models import Adjudication, ItemStatus, QueueItem, VerificationQueue
from spatiallab.verification.services import item_claim, verdict_submit
from tests.browser import WATCH_JS, log_in
from tests.factories import UserFactory
from tests.verification_data import make_pairs

# Transactional: the live server thread sees only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Watches for the adjudication panel of `item` and presses `key` as soon as it is inserted (a mutation observer runs
# right after the task that swapped it in), keeping the panel's "decided" line for the test.
KEY_ON_NEXT_ITEM_JS = """
({item, key}) => {
  const observer = new MutationObserver(() => {
    const panel = document.querySelector(`#adjudication[data-item="${item}"]`);
    if (!panel) return;
    observer.disconnect();
    window.__nextItemDecided = panel.querySelector("#adjudication-decided").textContent;
    document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
  });
  observer.observe(document.body, {childList: true, subtree: true});
}
"""
PLOTS = ["kappa", "annotator-rates", "annotator-seconds", "throughput", "answers"]
PLOTS_DRAWN_JS = """
(plots) => plots.every((name) => {
  const canvas = document.querySelector(`canvas[data-plot="${name}"]`);
  return canvas && window.Chart && window.Chart.getChart(canvas);
})
"""
# A canvas with painted pixels (not a blank bitmap), and what each chart holds.
CANVAS_JS = """
(name) => {
  const canvas = document.querySelector(`canvas[data-plot="${name}"]`);
  const chart = window.Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const meta = chart.getDatasetMeta(0);
  return {type: chart.config.type, width: canvas.width, height: canvas.height, painted,
          elements: meta.data.length, sized: meta.data.filter((e) => e.width > 0 && e.height > 0).length,
          datasets: chart.data.datasets.length};
}
"""


class FixedDraw:
    """An rng for item_claim: 0.0 serves a gold item when the queue has a gold share (and the perfect prompt's
    image on the left); 0.99 a regular item."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def answer(queue, user, what: str, *, gold: bool = False, seconds: float = 5.0) -> int:
    lease = item_claim(queue=queue, user=user, rng=FixedDraw(0.0 if gold else 0.99))
    winner_side, loser_side = ("left", "right") if lease.winner_left else ("right", "left")
    choice = {"winner": winner_side, "loser": loser_side}.get(what, what)
    verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice, seconds=seconds)
    return lease.item_id


def test_researcher_creates_a_queue_sees_statistics_and_adjudicates_with_the_keyboard(page, live_server,
                                                                                     demo_accounts):
    pairs = make_pairs(8, ground_truth=True, name="browser-queue-pairs")
    people = [UserFactory(username=name, role="annotator") for name in ("ann-a", "ann-b", "ann-c")]
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/queues/")
    assert "No queues yet" in page.locator("#queues").inner_text()
    page.evaluate(WATCH_JS)

    # The form: choosing the generator updates the count of matching pairs through htmx.
    form = page.locator("#queue-create-form")
    form.locator("select[name=generator]").select_option(str(pairs[0].generator_id))
    page.locator('#pair-count[data-count="8"][data-known="8"]').wait_for()
    form.locator("input[name=name]").fill("Browser queue")
    form.locator("textarea[name=instructions]").fill("Check where the objects are.")
    assert form.locator("input[name=overlap]").input_value() == "3"
    assert form.locator("input[name=lease_minutes]").input_value() == "10"
    form.locator("input[name=lease_minutes]").fill("15")
    form.locator("input[name=priority]").fill("4")
    form.locator("select[name=annotators]").select_option(label=["ann-a", "ann-b", "ann-c"])
    form.locator("input[name=gold_share]").fill("0.2")
    form.locator("input[name=gold_count]").fill("2")
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []

    # A quorum above the overlap: the 400 answer with the error on the field is swapped in, nothing is stored.
    form.locator("input[name=quorum]").fill("5")
    form.locator("button[name=create]").click()
    page.locator("#id_quorum-errors").wait_for()
    assert page.locator("#id_quorum-errors").inner_text() == "Quorum: Quorum must be between 1 and the overlap (3)."
    assert not VerificationQueue.objects.exists()
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []
    assert form.locator("input[name=name]").input_value() == "Browser queue"  # the answers are kept
    form.locator("input[name=quorum]").fill("")
    with page.expect_navigation():
        form.locator("button[name=create]").click()

    queue = VerificationQueue.objects.get(name="Browser queue")
    assert page.url == f"{live_server.url}/dashboard/queues/{queue.pk}/"
    assert page.locator(".flash").inner_text() == "Queue “Browser queue” created with 6 pairs and 2 gold."
    assert (queue.lease_minutes, queue.priority, queue.gold_share, queue.quorum) == (15, 4, 0.2, 2)
    assert set(queue.annotators.values_list("username", flat=True)) == {"ann-a", "ann-b", "ann-c"}
    assert page.locator('#queue-settings [data-setting="annotators"]').inner_text() == "ann-a, ann-b, ann-c"
    assert page.locator("#queue-items").get_attribute("data-count") == "8"

    # Annotators answer: each one gold item (ann-c wrongly), then three regular items together.
    for person, what in zip(people, ("winner", "winner", "loser"), strict=True):
        answer(queue, person, what, gold=True)
    rounds = [("winner", "winner", "winner"), ("winner", "loser", "unsure"), ("unsure", "unsure", "winner")]
    for answers in rounds:
        items = {answer(queue, person, what) for person, what in zip(people, answers, strict=True)}
        assert len(items) == 1
    disputed = list(QueueItem.objects.filter(queue=queue, status=ItemStatus.DISPUTED).order_by("decided_at", "pk"))
    assert len(disputed) == 2

    # The statistics page draws every plot.
    page.reload()
    with page.expect_navigation():
        page.locator("#stats-link").click()
    page.wait_for_function(PLOTS_DRAWN_JS, arg=PLOTS)
    assert all(url.startswith(live_server.url) for url in page.requests), page.requests  # no CDN
    assert page.locator('[data-stat="verdicts"] .value').inner_text() == "9"
    for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        assert page.locator(f'[data-stat="{name}"] .value').inner_text() != ""
    heatmap = page.evaluate(CANVAS_JS, "kappa")
    assert heatmap["type"] == "matrix" and heatmap["elements"] == 9 and heatmap["sized"] == 9, heatmap
    assert heatmap["painted"] > 1000, heatmap
    for name in PLOTS[1:]:
        drawn = page.evaluate(CANVAS_JS, name)
        assert drawn["painted"] > 1000 and drawn["elements"] > 0, (name, drawn)
    rates = page.evaluate("() => Chart.getChart(document.querySelector('canvas[data-plot=\"annotator-rates\"]'))"
                          ".data.datasets.map((d) => [d.label, d.data])")
    assert rates[0] == ["Gold accuracy", [100, 100, 0]]
    assert page.locator('#annotator-table tr[data-annotator="ann-c"] [data-col="gold_accuracy"]').inner_text() == (
        "0.0 % of 1")

    # Adjudication: v decides the first disputed item, the next one comes in through htmx; r the second.
    page.goto(f"{live_server.url}/dashboard/queues/{queue.pk}/adjudicate/")
    page.evaluate(WATCH_JS)
    panel = page.locator("#adjudication")
    assert panel.get_attribute("data-item") == str(disputed[0].pk)
    assert page.locator("#verdicts tbody tr").count() == 3
    assert page.locator(".pair-images figcaption").all_inner_texts() == ["Perfect prompt's image",
                                                                         "Perturbed prompt's image"]
    page.wait_for_function("() => [...document.querySelectorAll('#adjudication img')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    # Typing a note with a "v" in it writes the note, it does not decide.
    page.locator("textarea[name=note]").click()
    page.keyboard.type("very close call")
    assert panel.get_attribute("data-item") == str(disputed[0].pk)
    page.locator("h1").click()  # leave the note field
    # "r" goes in the moment the next item's panel is in the page (before anything else runs): a fast adjudicator's
    # key must reach htmx, not submit the new form natively (a full page load).
    page.evaluate(KEY_ON_NEXT_ITEM_JS, {"item": str(disputed[1].pk), "key": "r"})
    page.keyboard.press("v")
    page.locator("#adjudication-empty").wait_for()
    assert page.evaluate("window.__nextItemDecided") == (
        f"Item {disputed[0].pk} (pair {disputed[0].pair_id}): verified.")
    adjudication = Adjudication.objects.get(item=disputed[0])
    assert (adjudication.status, adjudication.note, adjudication.decided_by.username) == (
        "verified", "very close call", "researcher")
    assert QueueItem.objects.get(pk=disputed[1].pk).status == ItemStatus.REJECTED
    assert panel.get_attribute("data-remaining") == "0"
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []
    bad_request = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert page.errors == [bad_request]  # the quorum error above, and nothing else
