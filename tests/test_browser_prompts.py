"""The prompt-set pages in real Chromium (Playwright) against pytest-django's live server; no worker needed.

The demo researcher uploads a small JSONL file through the form, lands on the set's page with its four plots
drawn by the vendored Chart.js, searches the prompts (htmx, no reload), previews a perturbation (both texts with
<mark> highlights) and sees a preview error swapped in although it comes with status 400.
"""

import json

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.prompts.models import PerturbationRule, PromptSet
from tests.browser import log_in

# Transactional: the live server thread sees only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


PROMPTS = [
    "The mug is to the left of the laptop.",
    "A lamp is above the table.",
    "The book is in front of the vase.",
    "the mug is to the left of the laptop.",  # a duplicate (case only)
    "The plant is behind the sofa.",
]
UPLOAD = "".join(json.dumps({"text": text}) + "\n" for text in PROMPTS).encode()

WATCH_JS = """
() => {
  window.__noReload = true;
  window.__htmxErrors = [];
  for (const name of ["htmx:sendError", "htmx:swapError", "htmx:targetError"]) {
    document.body.addEventListener(name, (event) => window.__htmxErrors.push(name));
  }
}
"""
CHARTS_DRAWN_JS = """
() => {
  const canvases = [...document.querySelectorAll("canvas[data-plot]")];
  return window.Chart !== undefined && canvases.length === 4 && canvases.every((c) => Chart.getChart(c));
}
"""


def test_researcher_uploads_a_set_sees_plots_searches_and_previews(page, live_server, demo_accounts):
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/prompt-sets/")
    form = page.locator("#upload-form")
    form.locator("input[name=name]").fill("Browser upload")
    form.locator("input[name=file]").set_input_files(
        {"name": "prompts.jsonl", "mimeType": "application/x-ndjson", "buffer": UPLOAD})
    with page.expect_navigation():
        form.locator("button[name=upload]").click()

    prompt_set = PromptSet.objects.get(name="Browser upload")
    assert page.url == f"{live_server.url}/dashboard/prompt-sets/{prompt_set.pk}/"
    assert page.locator(".flash").inner_text() == "4 prompts stored, 1 duplicate skipped."
    assert page.locator("[data-stat=prompts]").inner_text() == "4"

    # The four plots are drawn by the vendored Chart.js, from our own server only.
    page.wait_for_function(CHARTS_DRAWN_JS)
    assert page.evaluate("() => Chart.getChart(document.querySelector('canvas[data-plot=relations]'))"
                         ".data.datasets[0].data.reduce((a, b) => a + b, 0)") == 4
    assert all(url.startswith(live_server.url) for url in page.requests), page.requests
    page.evaluate(WATCH_JS)

    # Search: typing filters the list through htmx, without a reload.
    results = page.locator("#prompt-results li[id^=prompt-]")
    assert results.count() == 4
    page.keyboard.press("/")  # the shortcut focuses the search box
    page.keyboard.type("lamp")
    page.locator("#prompt-count").filter(has_text="1 prompt matching “lamp”").wait_for()
    assert results.count() == 1
    assert "A lamp is above the table." in results.first.inner_text()
    assert results.first.locator("mark.rel").count() >= 1
    page.locator("input[name=q]").fill("")
    page.locator("input[name=q]").press("Backspace")
    page.locator("#prompt-count").filter(has_text="4 prompts").wait_for()

    # Preview: the Perturb button of a prompt fills the preview form and runs it.
    page.locator("#prompt-results li", has_text="The mug is to the left of the laptop.").get_by_role(
        "button", name="Perturb").click()
    page.locator("#preview-result [data-side=perturbed]").wait_for()
    assert page.locator("#preview-form textarea[name=text]").input_value() == PROMPTS[0]
    assert page.locator("#preview-result [data-side=original] mark.edit").count() >= 1
    assert page.locator("#preview-result [data-side=perturbed] mark.edit").count() >= 1
    original = page.locator("#preview-result [data-side=original]").inner_text()
    perturbed = page.locator("#preview-result [data-side=perturbed]").inner_text()
    assert original == PROMPTS[0] and perturbed != original
    assert page.locator("#preview-result ol.edits li").count() == 1

    # A prompt with nothing to perturb: the 400 answer is swapped in as an error block.
    page.locator("#preview-form textarea[name=text]").fill("A cat sleeps.")
    page.locator("#preview-form button[name=preview]").click()
    page.locator("#preview-result .error-block[role=alert]").wait_for()
    assert "No perturbation" in page.locator("#preview-result").inner_text()

    assert page.evaluate("window.__noReload") is True, "the page reloaded instead of updating through htmx"
    assert page.evaluate("window.__htmxErrors") == []
    # Chromium logs every 4xx response to the console: the one deliberate 400 above, and nothing else.
    bad_request = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert page.errors == [bad_request]


def test_rule_toggle_works_from_the_keyboard(page, live_server, demo_accounts):
    rule = PerturbationRule.objects.get(name="Swap objects")
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/perturbation-rules/")
    page.evaluate(WATCH_JS)
    toggle = page.locator(f"#rule-{rule.pk} button[role=switch]")
    assert toggle.get_attribute("aria-checked") == "true"
    toggle.focus()
    page.keyboard.press("Enter")
    page.locator(f"#rule-{rule.pk}[data-enabled=false] button[aria-checked=false]").wait_for()
    rule.refresh_from_db()
    assert rule.enabled is False
    assert page.evaluate("window.__noReload") is True
    assert page.errors == []
