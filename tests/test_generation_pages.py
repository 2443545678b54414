"""The researcher pages for pair generation: generators, the pair gallery and detail, launching generation from
a prompt set, and the view that serves pair images.

Bad input answers 400 naming the field and stores nothing; the gallery keeps a constant number of queries
however many pairs a page shows; annotators get 403 everywhere and change nothing.
"""

import json
import re
from html import unescape

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from ml.generation.settings import fields_of
from spatiallab.generation.forms import backend_defaults
from spatiallab.generation.models import Generator, Pair
from spatiallab.generation.services import GeneratedPair, generator_create, pairs_store
from spatiallab.generation.views import PAIRS_PER_PAGE
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(name, args=args)


def html(response) -> str:
    return response.content.decode()


# --- Building prompts, perturbed prompts and stored pairs (the browser test uses these too) -----------------


def make_rule(name: str, kind: str) -> PerturbationRule:
    return PerturbationRule.objects.update_or_create(name=name, defaults={"kind": kind, "enabled": True})[0]


def make_prompt(prompt_set: PromptSet, text: str) -> Prompt:
    position = prompt_set.prompts.count()
    return Prompt.objects.create(prompt_set=prompt_set, position=position, text=text,
                                 normalized_text=text.lower(), word_count=len(text.split()))


def make_perturbed(prompt: Prompt, edits: list[tuple[PerturbationRule, str, str]], *, seed: int = 1):
    """A perturbed copy of `prompt` with each (rule, word, replacement) applied, and its edit rows with spans."""
    text = prompt.text
    spans = []
    for _rule, word, replacement in edits:
        start = text.index(word)
        text = text[:start] + replacement + text[start + len(word):]
        spans.append((prompt.text.index(word), start, len(word), len(replacement)))
    perturbed = PerturbedPrompt.objects.create(prompt=prompt, text=text, normalized_text=text.lower(),
                                               n_edits=len(edits), seed=seed)
    for position, ((rule, word, replacement), (before, after, n_before, n_after)) in enumerate(
            zip(edits, spans, strict=True)):
        PerturbationEdit.objects.create(
            perturbed=perturbed, position=position, rule=rule, rule_kind=rule.kind, relation_kind="left_of",
            relation_before={"kind": "left_of", "subject": "mug", "anchors": ["laptop"], "text": word},
            relation_after={"kind": "right_of", "subject": "mug", "anchors": ["laptop"], "text": replacement},
            span_before=[before, before + n_before], span_after=[after, after + n_after])
    return perturbed


TRUTH_OK = {"winner": {"follows": True, "broken": [], "unsatisfied": []},
            "loser": {"follows": False, "broken": [], "unsatisfied": []}}
TRUTH_BROKEN = {"winner": {"follows": False, "unsatisfied": [],
                           "broken": [{"kind": "left_of", "subject": "mug", "anchors": ["laptop"]}]},
                "loser": {"follows": False, "broken": [], "unsatisfied": []}}


def store_pairs(generator, perturbed: list, *, seeds=(0,), job=None, ground_truth_ok=None, size=(48, 32)):
    """Stores real pairs (images written through the storage API, as the worker does)."""
    truth = {True: TRUTH_OK, False: TRUTH_BROKEN}.get(ground_truth_ok)
    items = []
    for item in perturbed:
        for seed in seeds:
            meta = {"backend": generator.backend, "generator": generator.name, "settings": generator.settings,
                    "seed": seed, "timings": {"generate_seconds": 0.25}}
            if truth:
                meta["ground_truth"] = truth
            items.append(GeneratedPair(
                perturbed_id=item.pk, prompt_id=item.prompt_id, n_edits=item.n_edits, seed=seed,
                winner=Image.new("RGB", size, (200, 40, 40)), loser=Image.new("RGB", size, (40, 40, 200)),
                meta=meta, ground_truth_ok=ground_truth_ok))
    pairs_store(job=job, generator=generator, pairs=items)
    return list(Pair.objects.filter(generator=generator, perturbed__in=perturbed).order_by("pk"))


KITCHEN = ["The mug is to the left of the laptop.", "A lamp is above the table.",
           "The cup is left of the bowl and the pen is above the book."]


def make_world():
    """Two prompt sets, two rules, four perturbed prompts, two generators and seven pairs:
    A (job 1): kitchen p0 [flip] ok, p1 [swap] not ok, p2 [flip+swap] unknown; B: p0 and garden [flip], 2 seeds."""
    flip, swap = make_rule("Flip direction", "flip_direction"), make_rule("Swap objects", "swap_objects")
    kitchen, garden = PromptSet.objects.create(name="Kitchen"), PromptSet.objects.create(name="Garden")
    k0, k1, k2 = (make_prompt(kitchen, text) for text in KITCHEN)
    g0 = make_prompt(garden, "The rose is to the left of the bench.")
    p0 = make_perturbed(k0, [(flip, "left", "right")])
    p1 = make_perturbed(k1, [(swap, "lamp", "table")])
    p2 = make_perturbed(k2, [(flip, "left", "right"), (swap, "above", "below")])
    pg = make_perturbed(g0, [(flip, "left", "right")])
    gen_a = generator_create(name="Renderer A", backend="scene-renderer", settings={"width": 64, "height": 64})
    gen_b = generator_create(name="Renderer B", backend="scene-renderer", settings={"break_fraction": 0.5})
    job = JobFactory(kind="generate_pairs", queue="gpu", status=JobStatus.SUCCEEDED,
                     params={"prompt_set": kitchen.pk, "generators": [gen_a.pk], "seeds": 1, "seed": 0})
    store_pairs(gen_a, [p0], job=job, ground_truth_ok=True)
    store_pairs(gen_a, [p1], job=job, ground_truth_ok=False)
    store_pairs(gen_a, [p2], job=job)
    store_pairs(gen_b, [p0, pg], seeds=(0, 1))
    return {"flip": flip, "swap": swap, "kitchen": kitchen, "garden": garden, "p0": p0, "p1": p1, "p2": p2,
            "pg": pg, "gen_a": gen_a, "gen_b": gen_b, "job": job}


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def res_client(client, researcher):
    client.force_login(researcher)
    return client


@pytest.fixture
def world(media):
    return make_world()


# --- Who may open what --------------------------------------------------------------------------------------


def _get_pages(world):
    pair = Pair.objects.first()
    return [url("generator-list"), url("generator-defaults") + "?backend=scene-renderer",
            url("generator-edit", world["gen_a"].pk), url("pair-gallery"), url("pair-detail", pair.pk),
            url("pair-image", pair.pk, "winner"), url("pair-image", pair.pk, "loser-thumb"),
            url("pair-generate", world["kitchen"].pk), url("pair-generation-runs", world["kitchen"].pk),
            url("generation-failures")]


def test_every_page_is_for_researchers_and_admins_only(client, annotator, researcher, admin_user, world):
    for path in _get_pages(world):
        client.logout()
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
        client.force_login(annotator)
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"Your role does not give access to this page." in response.content
        for user in (researcher, admin_user):
            client.force_login(user)
            assert client.get(path).status_code == 200, path


def test_annotators_change_nothing(client, annotator, world):
    client.force_login(annotator)
    gen = world["gen_a"]

    def state():
        return (list(Generator.objects.values_list("name", "enabled", "settings", "description")),
                Job.objects.count(), Pair.objects.count())

    before = state()
    posts = [
        (url("generator-register"), {"name": "New", "backend": "scene-renderer", "settings": "{}"}),
        (url("generator-toggle", gen.pk), {}),
        (url("generator-edit", world["gen_b"].pk), {"settings": "{}", "description": "changed"}),
        (url("pair-generate", world["kitchen"].pk), {"generators": [gen.pk], "seeds": 1, "seed": 0}),
    ]
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
        assert client.post(path, data, HTTP_HX_REQUEST="true").status_code == 403, path
    assert state() == before


def test_urls_and_nav_links():
    assert url("generator-list") == "/dashboard/generators/"
    assert url("pair-gallery") == "/dashboard/pairs/"
    assert url("pair-detail", 5) == "/dashboard/pairs/5/"
    assert url("pair-generate", 3) == "/dashboard/pairs/launch/3/"


def test_nav_shows_generators_and_pairs_to_researchers(res_client):
    content = html(res_client.get(url("generator-list")))
    assert f'<a href="{url("generator-list")}" data-nav="generators">Generators</a>' in content
    assert f'<a href="{url("pair-gallery")}" data-nav="pairs">Pairs</a>' in content


# --- Generators ----------------------------------------------------------------------------------------------


def _textarea(content: str, name: str = "settings") -> str:
    match = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', content, re.S)
    assert match, content
    return unescape(match.group(1)).removeprefix("\n")  # the newline after <textarea> is not content


def test_generators_page_lists_generators_with_pair_counts_and_key_settings(res_client, world):
    content = html(res_client.get(url("generator-list")))
    row_a = re.search(rf'<tr id="generator-{world["gen_a"].pk}".*?</tr>', content, re.S).group(0)
    row_b = re.search(rf'<tr id="generator-{world["gen_b"].pk}".*?</tr>', content, re.S).group(0)
    assert 'data-pairs="3"' in row_a and 'data-pairs="4"' in row_b
    assert "<code>width=64</code>" in row_a and "<code>break_fraction=0.5</code>" in row_b
    assert "Scene renderer (CPU, ground truth)" in row_a
    assert f'href="{url("pair-gallery")}?generator={world["gen_a"].pk}"' in row_a
    assert 'role="switch" aria-checked="true"' in row_a


def test_register_form_starts_from_the_chosen_backends_defaults(res_client):
    content = html(res_client.get(url("generator-list")))
    assert json.loads(_textarea(content)) == backend_defaults("diffusers")
    assert f'hx-get="{url("generator-defaults")}"' in content and 'hx-target="#settings-field"' in content
    content = html(res_client.get(url("generator-list"), {"backend": "scene-renderer"}))
    assert json.loads(_textarea(content)) == backend_defaults("scene-renderer")
    assert '<option value="scene-renderer" selected>' in content


def test_help_tables_list_every_setting_of_every_backend(res_client):
    content = html(res_client.get(url("generator-list")))
    for backend in ("diffusers", "scene-renderer"):
        table = re.search(rf'<table class="jobs reference" id="settings-{backend}".*?</table>', content, re.S).group(0)
        for field in fields_of(backend):
            assert f'<tr data-setting="{field.name}">' in table
        assert table.count("<tr data-setting=") == len(fields_of(backend))
    steps = re.search(r'<tr data-setting="steps">.*?</tr>', content, re.S).group(0)
    assert "<code>28</code>" in steps and "1 to 1000" in steps and "Denoising steps." in steps
    dtype = re.search(r'<tr data-setting="dtype">.*?</tr>', content, re.S).group(0)
    assert "one of float32, float16, bfloat16" in dtype


def test_defaults_endpoint_swaps_in_the_backends_settings(res_client):
    response = res_client.get(url("generator-defaults"), {"backend": "scene-renderer"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    content = html(response)
    assert content.startswith('<div id="settings-field">') and "<h1>" not in content
    assert json.loads(_textarea(content)) == backend_defaults("scene-renderer")
    response = res_client.get(url("generator-defaults"), {"backend": "dall-e"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert 'id="settings-field"' in html(response) and "Backend:</span> Select a valid choice." in html(response)


def test_registering_a_generator_stores_it_with_completed_settings(res_client, researcher):
    response = res_client.post(url("generator-register"), {
        "name": " Renderer 128 ", "backend": "scene-renderer",
        "settings": '{"width": 128, "labels": false, "object_scale": 1.6, "back_scale": 0.9, '
                    '"shapes": "rectangles", "exact_colours": true}',
        "description": "small", "enabled": "on"})
    generator = Generator.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("generator-list") + f"#generator-{generator.pk}"
    assert generator.name == "Renderer 128" and generator.created_by == researcher and generator.enabled
    assert generator.settings == {**backend_defaults("scene-renderer"), "width": 128, "labels": False,
                                  "object_scale": 1.6, "back_scale": 0.9, "shapes": "rectangles",
                                  "exact_colours": True}
    content = html(res_client.get(response["Location"]))
    assert "Generator “Renderer 128” registered." in content and f'id="generator-{generator.pk}"' in content


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"settings": '{"width": 128,}'}, "settings", "Not valid JSON (Expecting property name enclosed in double "
                                                  "quotes at line 1, column 15)."),
    ({"settings": "[1, 2]"}, "settings", "Must be a JSON object"),
    ({"settings": '{"colour": "red"}'}, "settings", "colour: unknown setting for the scene-renderer backend."),
    ({"settings": '{"width": 10}'}, "settings", "width: must be at least 64."),
    ({"settings": '{"break_fraction": 2}'}, "settings", "break_fraction: must be at most 1.0."),
    ({"settings": '{"labels": "perhaps"}'}, "settings", "labels: must be true or false."),
    ({"settings": '{"object_scale": 3}'}, "settings", "object_scale: must be at most 2.5."),
    ({"settings": '{"back_scale": 1.2}'}, "settings", "back_scale: must be at most 1.0."),
    ({"settings": '{"shapes": "circles"}'}, "settings", "shapes: must be one of varied, rectangles."),
    ({"backend": "diffusers", "settings": '{"model": "/m", "steps": 0}'}, "settings",
     "steps: must be at least 1."),
    ({"backend": "diffusers", "settings": "{}"}, "settings", "model: a local pipeline folder"),
    ({"backend": "dall-e"}, "backend", "Select a valid choice."),
    ({"name": ""}, "name", "This field is required."),
    ({"name": "Existing"}, "name", "A generator named &#x27;Existing&#x27; exists already."),
])
def test_register_errors_name_the_field_and_store_nothing(data, field, message, res_client):
    generator_create(name="Existing", backend="scene-renderer")
    post = {"name": "New", "backend": "scene-renderer", "settings": "{}", **data}
    response = res_client.post(url("generator-register"), post)
    assert response.status_code == 400
    content = html(response)
    errors = re.search(rf'<ul class="errors" id="id_{field}-errors".*?</ul>', content, re.S)
    assert errors and message in errors.group(0), content
    assert list(Generator.objects.values_list("name", flat=True)) == ["Existing"]
    # The form comes back as typed, so the researcher can fix it.
    if field == "settings":
        assert _textarea(content) == post["settings"]


def test_toggle_switches_a_generator_with_htmx_and_without(res_client, world):
    gen = world["gen_a"]
    response = res_client.post(url("generator-toggle", gen.pk), HTTP_HX_REQUEST="true")
    content = html(response)
    assert response.status_code == 200 and content.startswith(f'<tr id="generator-{gen.pk}" data-enabled="false"')
    assert 'aria-checked="false"' in content and 'data-pairs="3"' in content
    gen.refresh_from_db()
    assert gen.enabled is False
    response = res_client.post(url("generator-toggle", gen.pk))
    assert response.status_code == 302
    gen.refresh_from_db()
    assert gen.enabled is True
    assert res_client.post(url("generator-toggle", 99999)).status_code == 404
    assert res_client.get(url("generator-toggle", gen.pk)).status_code == 405


def test_editing_settings_of_an_unused_generator(res_client):
    gen = generator_create(name="Fresh", backend="scene-renderer")
    content = html(res_client.get(url("generator-edit", gen.pk)))
    assert json.loads(_textarea(content)) == gen.settings and 'id="frozen-note"' not in content
    response = res_client.post(url("generator-edit", gen.pk), {"settings": '{"width": 96}', "description": "d"})
    assert response.status_code == 302
    gen.refresh_from_db()
    assert gen.settings["width"] == 96 and gen.description == "d"
    response = res_client.post(url("generator-edit", gen.pk), {"settings": '{"width": 1}', "description": "x"})
    assert response.status_code == 400 and "width: must be at least 64." in html(response)
    gen.refresh_from_db()
    assert gen.settings["width"] == 96 and gen.description == "d"


def test_settings_of_a_used_generator_are_frozen(res_client, world):
    gen = world["gen_a"]
    before = dict(gen.settings)
    content = html(res_client.get(url("generator-edit", gen.pk)))
    assert 'id="frozen-note"' in content
    response = res_client.post(url("generator-edit", gen.pk), {"settings": '{"width": 96}', "description": "new"})
    assert response.status_code == 400
    errors = re.search(r'<ul class="errors" id="id_settings-errors".*?</ul>', html(response), re.S).group(0)
    assert "settings are frozen" in errors
    gen.refresh_from_db()
    assert gen.settings == before and gen.description == ""
    # The same settings with a new description: allowed.
    response = res_client.post(url("generator-edit", gen.pk), {"settings": json.dumps(before), "description": "new"})
    assert response.status_code == 302
    gen.refresh_from_db()
    assert gen.description == "new" and gen.settings == before


def test_generators_page_keeps_a_constant_number_of_queries(res_client, world):
    with CaptureQueriesContext(connection) as few:
        assert res_client.get(url("generator-list")).status_code == 200
    for i in range(6):
        generator_create(name=f"More {i}", backend="scene-renderer")
    with CaptureQueriesContext(connection) as many:
        response = res_client.get(url("generator-list"))
    assert html(response).count('<tr id="generator-') == 8
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- Gallery --------------------------------------------------------------------------------------------------


def _count(response) -> int:
    match = re.search(r'<div id="pair-results" aria-live="polite" data-count="(\d+)">', html(response))
    assert match, html(response)
    return int(match.group(1))


def test_gallery_shows_cards_with_both_thumbnails_prompts_and_provenance(res_client, world):
    response = res_client.get(url("pair-gallery"))
    assert _count(response) == 7
    content = html(response)
    pair = Pair.objects.get(generator=world["gen_a"], perturbed=world["p0"])
    card = re.search(rf'<article class="pair-card" id="pair-{pair.pk}".*?</article>', content, re.S).group(0)
    assert 'data-ground-truth="ok"' in card
    for which in ("winner", "loser"):
        assert f'href="{url("pair-image", pair.pk, which)}"' in card
        assert f'src="{url("pair-image", pair.pk, which + "-thumb")}"' in card
    assert "Perfect prompt (candidate winner)" in card and "Perturbed prompt (candidate loser)" in card
    assert card.index("candidate winner") < card.index("candidate loser")
    assert "Renderer A" in card and "seed 0" in card and "1 edit" in card
    assert f'<a href="{url("job-detail", world["job"].pk)}">job {world["job"].pk}</a>' in card
    assert f'href="{url("pair-detail", pair.pk)}"' in card
    assert 'The mug is to the <mark class="edit" title="edit 1: Flip direction">left</mark> of the laptop.' in card
    assert 'The mug is to the <mark class="edit" title="edit 1: Flip direction">right</mark> of the laptop.' in card
    assert "Ground truth: a good pair" in card
    assert '<span class="truth-role as-expected" data-role="winner" data-follows="true">' in card
    assert '<span class="truth-role as-expected" data-role="loser" data-follows="false">' in card

    broken = Pair.objects.get(generator=world["gen_a"], perturbed=world["p1"])
    card = re.search(rf'<article class="pair-card" id="pair-{broken.pk}".*?</article>', content, re.S).group(0)
    assert 'data-ground-truth="not-ok"' in card and "Ground truth: not a good pair" in card
    assert "deliberately broken: left of(mug, laptop)" in card
    assert '<span class="truth-role unexpected" data-role="winner" data-follows="false">' in card
    unknown = Pair.objects.get(perturbed=world["p2"])
    card = re.search(rf'<article class="pair-card" id="pair-{unknown.pk}".*?</article>', content, re.S).group(0)
    assert 'data-ground-truth="none"' in card and "Ground truth" not in card and "2 edits" in card
    assert card.count('<mark class="edit"') == 4


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, 7),
    ({"job": "JOB"}, 3),
    ({"generator": "gen_a"}, 3),
    ({"generator": "gen_b"}, 4),
    ({"rule": "flip"}, 6),
    ({"rule": "swap"}, 2),
    ({"n_edits": "1"}, 6),
    ({"n_edits": "2-3"}, 1),
    ({"prompt_set": "kitchen"}, 5),
    ({"prompt_set": "garden"}, 2),
    ({"ground_truth": "ok"}, 1),
    ({"ground_truth": "not-ok"}, 1),
    ({"generator": "gen_b", "prompt_set": "garden"}, 2),
    ({"rule": "swap", "n_edits": "1"}, 1),
    ({"generator": "gen_b", "ground_truth": "ok"}, 0),
])
def test_each_gallery_filter_narrows_the_pairs(filters, expected, res_client, world):
    params = {key: (world["job"].pk if value == "JOB" else world[value].pk if value in world else value)
              for key, value in filters.items()}
    response = res_client.get(url("pair-gallery"), params)
    assert response.status_code == 200
    assert _count(response) == expected
    assert html(response).count('<article class="pair-card"') == expected
    ids = {int(i) for i in re.findall(r'<article class="pair-card" id="pair-(\d+)"', html(response))}
    assert len(ids) == expected  # no pair twice (a rule matching two edits of one pair)


def test_gallery_filters_answer_htmx_with_the_results_only(res_client, world):
    response = res_client.get(url("pair-gallery"), {"generator": world["gen_b"].pk}, HTTP_HX_REQUEST="true")
    content = html(response)
    assert content.startswith('<div id="pair-results"') and "<h1>" not in content and _count(response) == 4
    page = html(res_client.get(url("pair-gallery")))
    assert 'hx-get="/dashboard/pairs/" hx-target="#pair-results"' in page and 'hx-push-url="true"' in page
    # The Back button restores history with a whole page, not the block.
    response = res_client.get(url("pair-gallery"), {"generator": world["gen_b"].pk}, HTTP_HX_REQUEST="true",
                              HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<h1>Generated pairs</h1>" in html(response)
    # Every filter is offered: generators, rules and prompt sets by name.
    for name in ("Renderer A", "Renderer B", "Flip direction", "Swap objects", "Kitchen", "Garden"):
        assert f">{name}</option>" in page


def test_bad_gallery_filters_answer_400_naming_them(res_client, world):
    response = res_client.get(url("pair-gallery"), {"job": "x", "generator": 99999, "n_edits": "7",
                                                    "ground_truth": "maybe"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    content = html(response)
    for label in ("Job:", "Generator:", "Edits:", "Ground truth:"):
        assert f'<span class="field-name">{label}</span>' in content, label
    assert '<article class="pair-card"' not in content


def test_gallery_pages(res_client, media):
    generator, perturbed = _bulk(PAIRS_PER_PAGE + 3)
    first = html(res_client.get(url("pair-gallery")))
    assert first.count('<article class="pair-card"') == PAIRS_PER_PAGE and "Page 1 of 2" in first
    second = html(res_client.get(url("pair-gallery"), {"generator": generator.pk, "page": 2}))
    assert second.count('<article class="pair-card"') == 3
    assert f'hx-get="/dashboard/pairs/?generator={generator.pk}&amp;page=1"' in second


def _bulk(count: int, *, start: int = 0, prompt_set=None, generator=None):
    """`count` perturbed prompts with one edit each, and a pair of each."""
    rule = make_rule("Flip direction", "flip_direction")
    prompt_set = prompt_set or PromptSet.objects.create(name="Bulk")
    generator = generator or generator_create(name="Bulk renderer", backend="scene-renderer")
    perturbed = [make_perturbed(make_prompt(prompt_set, f"Item {i} is left of box {i}."), [(rule, "left", "right")])
                 for i in range(start, start + count)]
    store_pairs(generator, perturbed, size=(8, 8))
    return generator, perturbed


def test_gallery_keeps_a_constant_number_of_queries(res_client, media):
    generator, _ = _bulk(3)
    prompt_set = PromptSet.objects.get(name="Bulk")
    params = {"generator": generator.pk, "rule": PerturbationRule.objects.get(name="Flip direction").pk}
    with CaptureQueriesContext(connection) as few:
        response = res_client.get(url("pair-gallery"), params)
    assert html(response).count('<article class="pair-card"') == 3
    _bulk(17, start=3, prompt_set=prompt_set, generator=generator)
    with CaptureQueriesContext(connection) as many:
        response = res_client.get(url("pair-gallery"), params)
    assert html(response).count('<article class="pair-card"') == 20
    assert html(response).count('<mark class="edit"') == 40
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- Pair detail and images ----------------------------------------------------------------------------------


def test_pair_detail_shows_both_images_prompts_and_all_metadata(res_client, world):
    pair = Pair.objects.get(generator=world["gen_a"], perturbed=world["p1"])
    response = res_client.get(url("pair-detail", pair.pk))
    assert response.status_code == 200
    content = html(response)
    for which in ("winner", "loser"):
        assert f'<img src="{url("pair-image", pair.pk, which)}"' in content
    assert "Perfect prompt (candidate winner)" in content and "Perturbed prompt (candidate loser)" in content
    assert '<mark class="edit" title="edit 1: Swap objects">lamp</mark>' in content
    assert '<dd data-fact="seed">0</dd>' in content and "<dt>generate</dt><dd>0.25 s</dd>" in content
    settings_block = re.search(r'<pre class="json" id="pair-settings">(.*?)</pre>', content, re.S).group(1)
    assert json.loads(unescape(settings_block)) == world["gen_a"].settings
    truth = re.search(r'<pre class="json" id="pair-ground-truth">(.*?)</pre>', content, re.S).group(1)
    assert json.loads(unescape(truth)) == TRUTH_BROKEN
    meta = re.search(r'<pre class="json" id="pair-meta">(.*?)</pre>', content, re.S).group(1)
    assert json.loads(unescape(meta)) == pair.meta
    assert res_client.get(url("pair-detail", 99999)).status_code == 404


def test_pair_image_serves_each_file_with_its_content_type(res_client, world):
    pair = Pair.objects.get(generator=world["gen_a"], perturbed=world["p0"])
    for which, field, content_type in [("winner", "winner_image", "image/png"), ("loser", "loser_image", "image/png"),
                                       ("winner-thumb", "winner_thumb", "image/webp"),
                                       ("loser-thumb", "loser_thumb", "image/webp")]:
        response = res_client.get(url("pair-image", pair.pk, which))
        assert response.status_code == 200 and response["Content-Type"] == content_type
        body = b"".join(response.streaming_content)
        with default_storage.open(getattr(pair, field), "rb") as handle:
            assert body == handle.read()
    image = Image.open(default_storage.open(pair.winner_image))
    assert image.size == (48, 32) and image.getpixel((0, 0)) == (200, 40, 40)
    assert res_client.get(url("pair-image", pair.pk, "perfect")).status_code == 404
    assert res_client.get(url("pair-image", 99999, "winner")).status_code == 404


# --- Launching generation ------------------------------------------------------------------------------------


def test_prompt_set_page_loads_the_generate_panel(res_client, world):
    content = html(res_client.get(url("prompt-set-detail", world["kitchen"].pk)))
    assert f'hx-get="{url("pair-generate", world["kitchen"].pk)}" hx-trigger="load"' in content


def test_generate_panel_offers_enabled_generators_and_lists_runs(res_client, world):
    world["gen_b"].enabled = False
    world["gen_b"].save(update_fields=["enabled"])
    response = res_client.get(url("pair-generate", world["kitchen"].pk), HTTP_HX_REQUEST="true")
    content = html(response)
    assert content.startswith('<div id="generate-pairs-panel">') and "<h1>" not in content
    assert "Renderer A (scene-renderer)" in content and "Renderer B" not in content
    for name in ("seeds", "seed", "n_edits", "rules", "limit"):
        assert f'data-field="{name}"' in content
    job = world["job"]
    assert f'<li id="generation-run-{job.pk}" data-status="succeeded">' in content
    assert f'href="{url("pair-gallery")}?job={job.pk}"' in content
    assert 'id="set-pair-count">5<' in content
    assert "every 2s" not in content
    # Without htmx: a page of its own.
    assert "<title>Generate pairs · Kitchen" in html(res_client.get(url("pair-generate", world["kitchen"].pk)))


def test_launching_generation_creates_the_job(res_client, researcher, world, django_capture_on_commit_callbacks):
    kitchen = world["kitchen"]
    data = {"generators": [world["gen_b"].pk, world["gen_a"].pk], "seeds": 2, "seed": 7, "n_edits": "1",
            "rules": [world["flip"].pk], "limit": 5}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = res_client.post(url("pair-generate", kitchen.pk), data)
    job = Job.objects.exclude(pk=world["job"].pk).get()
    assert response.status_code == 302 and response["Location"] == url("job-detail", job.pk)
    assert (job.kind, job.queue, job.created_by, job.status) == ("generate_pairs", "gpu", researcher,
                                                                 JobStatus.QUEUED)
    assert job.params == {"prompt_set": kitchen.pk, "generators": sorted([world["gen_a"].pk, world["gen_b"].pk]),
                          "seeds": 2, "seed": 7, "n_edits": "1", "rules": [world["flip"].pk], "limit": 5}
    assert len(callbacks) == 1  # enqueued once the transaction commits

    # With htmx: the form comes back with a note linking to the job, and the runs list is told to reload.
    with django_capture_on_commit_callbacks(execute=False):
        response = res_client.post(url("pair-generate", kitchen.pk), {"generators": [world["gen_a"].pk],
                                                                      "seeds": 1, "seed": 0},
                                   HTTP_HX_REQUEST="true")
    second = Job.objects.latest("pk")
    content = html(response)
    assert response.status_code == 200 and response["HX-Trigger"] == "generation-runs-changed"
    assert f'Launched job <a href="{url("job-detail", second.pk)}">{second.pk}</a>' in content
    assert second.params == {"prompt_set": kitchen.pk, "generators": [world["gen_a"].pk], "seeds": 1, "seed": 0,
                             "n_edits": "", "rules": [], "limit": 0}

    runs = html(res_client.get(url("pair-generation-runs", kitchen.pk)))
    assert f'<li id="generation-run-{second.pk}" data-status="queued">' in runs
    assert 'role="progressbar"' in runs and 'hx-trigger="every 2s"' in runs
    Job.objects.update(status=JobStatus.SUCCEEDED)
    assert "hx-trigger" not in html(res_client.get(url("pair-generation-runs", kitchen.pk)))


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"generators": []}, "generators", "This field is required."),
    ({"generators": ["DISABLED"]}, "generators", "Select a valid choice."),
    ({"seeds": 0}, "seeds", "greater than or equal to 1"),
    ({"seeds": 65}, "seeds", "less than or equal to 64"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"n_edits": "4"}, "n_edits", "Select a valid choice."),
    ({"rules": [99999]}, "rules", "Select a valid choice."),
    ({"limit": -2}, "limit", "greater than or equal to 0"),
])
def test_bad_launch_forms_name_the_field_and_queue_nothing(change, field, message, res_client, world,
                                                           django_capture_on_commit_callbacks):
    world["gen_b"].enabled = False
    world["gen_b"].save(update_fields=["enabled"])
    data = {"generators": [world["gen_a"].pk], "seeds": 1, "seed": 0, **change}
    if data["generators"] == ["DISABLED"]:
        data["generators"] = [world["gen_b"].pk]
    jobs = Job.objects.count()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = res_client.post(url("pair-generate", world["kitchen"].pk), data, HTTP_HX_REQUEST="true")
        assert response.status_code == 400
        content = html(response)
        assert content.startswith('<form id="generate-pairs-form"')
        errors = re.search(rf'<ul class="errors" id="id_{field}-errors".*?</ul>', content, re.S)
        assert errors and message in errors.group(0), content
        response = res_client.post(url("pair-generate", world["kitchen"].pk), data)
        assert response.status_code == 400 and "<title>Generate pairs · Kitchen" in html(response)
    assert Job.objects.count() == jobs and callbacks == []


def test_a_launch_with_no_matching_perturbed_prompts_says_so(res_client, world, django_capture_on_commit_callbacks):
    jobs = Job.objects.count()
    empty = PromptSet.objects.create(name="Empty")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for prompt_set, extra in [(world["garden"], {"rules": [world["swap"].pk]}),
                                  (world["garden"], {"n_edits": "2-3"}), (empty, {})]:
            response = res_client.post(url("pair-generate", prompt_set.pk),
                                       {"generators": [world["gen_a"].pk], "seeds": 1, "seed": 0, **extra},
                                       HTTP_HX_REQUEST="true")
            assert response.status_code == 400
            errors = re.search(r'<ul class="errors" role="alert">(.*?)</ul>', html(response), re.S).group(1)
            assert "prompt_set: No perturbed prompts match" in errors
    assert Job.objects.count() == jobs and callbacks == []
    assert res_client.post(url("pair-generate", 99999), {"generators": [world["gen_a"].pk]}).status_code == 404


# --- Failures ---------------------------------------------------------------------------------------------------


def test_failures_page_lists_what_a_job_could_not_render_and_the_runs_panel_links_it(res_client, world):
    from spatiallab.generation.services import generation_failures_record

    job, other = world["job"], JobFactory(kind="generate_pairs", queue="gpu")
    p1 = PerturbedPrompt.objects.select_related("prompt").get(pk=world["p1"].pk)
    generation_failures_record(job=job, generator=world["gen_a"], failures=[(p1, 3)], error="Traceback: OOM")
    generation_failures_record(job=other, generator=world["gen_a"], failures=[(p1, 4)], error="other job")
    Job.objects.filter(pk=job.pk).update(result={"pairs": 3, "failed": 1})

    page = html(res_client.get(url("generation-failures") + f"?job={job.pk}"))
    assert 'id="failure-count">1 prompt pair could not' in page
    assert p1.prompt.text in unescape(page) and p1.text in unescape(page) and "Traceback: OOM" in page
    assert "other job" not in page
    assert "2 prompt pairs" in html(res_client.get(url("generation-failures")))
    assert res_client.get(url("generation-failures") + "?job=abc").status_code == 400

    panel = html(res_client.get(url("pair-generation-runs", world["kitchen"].pk)))
    assert f'href="{url("generation-failures")}?job={job.pk}"' in panel and "1 failed" in panel
