"""The generation pages in real Chromium (Playwright) against pytest-django's live server; no worker needed.

The demo researcher registers a scene-renderer generator (switching the backend swaps in its default settings),
opens the gallery of stored pairs, filters it through htmx without a reload (the URL follows), sees the
thumbnails load and the edits marked, and opens the "Generate pairs" panel that the prompt-set page loads.
"""

import json

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.generation.forms import backend_defaults
from spatiallab.generation.models import Generator, Pair
from tests.browser import WATCH_JS, log_in
from tests.test_generation_pages import make_world

# Transactional: the live server thread sees only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THUMBNAILS_LOADED_JS = """
() => {
  const images = [...document.querySelectorAll("#pair-results img")];
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}
"""


def test_researcher_registers_a_scene_renderer_generator(page, live_server, demo_accounts):
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/generators/")
    page.evaluate(WATCH_JS)
    form = page.locator("#generator-form")
    settings = form.locator("textarea[name=settings]")
    assert json.loads(settings.input_value()) == backend_defaults("diffusers")

    # Switching the backend swaps in that backend's defaults (htmx GET), without a reload.
    form.locator("select[name=backend]").select_option("scene-renderer")
    page.wait_for_function("() => document.querySelector('#generator-form textarea[name=settings]')"
                           ".value.includes('break_fraction')")
    defaults = json.loads(settings.input_value())
    assert defaults == backend_defaults("scene-renderer")
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []

    form.locator("input[name=name]").fill("Browser renderer")
    settings.fill(json.dumps({**defaults, "width": 128, "height": 96}, indent=2))
    form.locator("textarea[name=description]").fill("registered from the browser")
    with page.expect_navigation():
        form.locator("button[name=register]").click()

    generator = Generator.objects.get(name="Browser renderer")
    assert generator.backend == "scene-renderer" and (generator.settings["width"], generator.settings["height"]) == (
        128, 96)
    assert page.locator(".flash").inner_text() == "Generator “Browser renderer” registered."
    row = page.locator(f"#generator-{generator.pk}")
    assert "Browser renderer" in row.inner_text() and "width=128" in row.inner_text()
    assert row.get_attribute("data-enabled") == "true"
    assert page.errors == []


def test_researcher_filters_the_gallery_and_sees_thumbnails_and_edits(page, live_server, demo_accounts):
    world = make_world()
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/pairs/")
    results = page.locator("#pair-results")
    assert results.get_attribute("data-count") == "7"
    page.wait_for_function(THUMBNAILS_LOADED_JS)
    page.evaluate(WATCH_JS)

    # Filter by generator: only the results block changes, and the URL follows.
    page.locator("#pair-filters select[name=generator]").select_option(label="Renderer A")
    page.locator('#pair-results[data-count="3"]').wait_for()
    assert f"generator={world['gen_a'].pk}" in page.url
    # Then by rule as well.
    page.locator("#pair-filters select[name=rule]").select_option(label="Swap objects")
    page.locator('#pair-results[data-count="2"]').wait_for()
    assert f"rule={world['swap'].pk}" in page.url
    cards = page.locator("#pair-results article.pair-card")
    assert cards.count() == 2
    expected = {Pair.objects.get(generator=world["gen_a"], perturbed=world[key]).pk for key in ("p1", "p2")}
    assert {int(cards.nth(i).get_attribute("id").removeprefix("pair-")) for i in range(2)} == expected

    # The thumbnails of the new results load, through the role-checked image view.
    page.wait_for_function(THUMBNAILS_LOADED_JS)
    first = cards.first
    assert first.locator("figcaption").all_inner_texts() == ["Perfect prompt (candidate winner)",
                                                            "Perturbed prompt (candidate loser)"]
    # Edits are marked on both sides.
    assert first.locator("[data-side=original] mark.edit").count() >= 1
    assert first.locator("[data-side=perturbed] mark.edit").count() >= 1
    p1 = page.locator(f"#pair-{Pair.objects.get(generator=world['gen_a'], perturbed=world['p1']).pk}")
    assert p1.locator("[data-side=original] mark.edit").inner_text() == "lamp"
    assert "not a good pair" in p1.inner_text() and "deliberately broken" in p1.inner_text()
    # The full image behind a thumbnail is served too.
    href = first.locator("a:has(img[data-role=winner])").get_attribute("href")
    assert page.evaluate("(url) => fetch(url).then((r) => r.headers.get('content-type'))", href) == "image/png"

    assert page.evaluate("window.__noReload") is True, "the page reloaded instead of updating through htmx"
    assert page.evaluate("window.__htmxErrors") == []
    assert page.errors == []


def test_prompt_set_page_loads_the_generate_panel_and_shows_its_errors(page, live_server, demo_accounts):
    world = make_world()
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/prompt-sets/{world['kitchen'].pk}/")
    form = page.locator("#generate-pairs-form")
    form.wait_for()
    page.evaluate(WATCH_JS)
    assert "Renderer A" in form.inner_text()
    run = page.locator(f"#generation-run-{world['job'].pk}")
    assert run.get_attribute("data-status") == "succeeded"
    assert run.locator(f"a[href='/dashboard/pairs/?job={world['job'].pk}']").count() == 1

    # No generator ticked: the 400 answer with the error is swapped in, and no job is made.
    form.locator("button[name=generate]").click()
    page.locator("#id_generators-errors").wait_for()
    assert "This field is required." in page.locator("#id_generators-errors").inner_text()
    assert page.evaluate("window.__noReload") is True and page.evaluate("window.__htmxErrors") == []
    bad_request = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert page.errors == [bad_request]


@pytest.mark.worker
def test_researcher_launches_generation_and_watches_it_finish_on_a_real_worker(page, live_server, demo_accounts,
                                                                                workers):
    """The whole loop in the browser: launch from the prompt set's page, the run's progress polls until a real
    worker has rendered every pair with the demo's scene renderer, then the gallery shows them."""
    from spatiallab.jobs.models import Job
    from spatiallab.prompts.models import PerturbedPrompt
    from tests.generation_data import perturbed_prompt_set

    prompt_set = perturbed_prompt_set(count=4, seed=12)
    n_perturbed = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    workers.start(queues="gpu")
    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/prompt-sets/{prompt_set.pk}/")
    form = page.locator("#generate-pairs-form")
    form.wait_for()
    form.get_by_label("Scene renderer (scene-renderer)", exact=True).check()
    form.locator("input[name=seeds]").fill("2")
    form.locator("button[name=generate]").click()
    page.locator("#generation-launched").wait_for()
    job = Job.objects.get(kind="generate_pairs")
    assert job.params["seeds"] == 2 and job.params["generators"] == [Generator.objects.get(name="Scene renderer").pk]

    page.wait_for_function(
        f"document.querySelector('#generation-run-{job.pk}')?.dataset.status === 'succeeded'", timeout=90_000)
    assert Pair.objects.filter(job=job).count() == 2 * n_perturbed
    page.locator(f"[data-pairs-of-job='{job.pk}']").click()
    page.wait_for_url(f"**/dashboard/pairs/?job={job.pk}")
    assert page.locator("#pair-results .pair-card").count() == min(2 * n_perturbed, 24)
    # Thumbnails load lazily: those of the first card, in view, arrive from the worker's files.
    page.wait_for_function("""() => [...document.querySelectorAll("#pair-results .pair-card:first-of-type img")]
        .every((img) => img.complete && img.naturalWidth > 0)""")
