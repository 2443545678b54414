"""The generation endpoints of /api/v1/: generators (register, settings frozen once used), pairs with their
image URLs and filters, generation failures, and launching a generation job through /api/v1/jobs/."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from spatiallab.generation.models import Generator, Pair
from spatiallab.generation.services import GeneratedPair, generation_failures_record, pairs_store
from spatiallab.jobs.models import Job
from spatiallab.prompts.models import PerturbationEdit, PerturbedPrompt
from tests.factories import GeneratorFactory, JobFactory, token_client
from tests.generation_data import perturbed_prompt_set

pytestmark = pytest.mark.django_db

GENERATORS = "/api/v1/generators/"
PAIRS = "/api/v1/pairs/"
FAILURES = "/api/v1/generation-failures/"


def store_pairs(generator, perturbed, *, job=None, seeds=(0,)):
    items = [GeneratedPair(perturbed_id=p.pk, prompt_id=p.prompt_id, n_edits=p.n_edits, seed=seed,
                           winner=Image.new("RGB", (32, 32), "red"), loser=Image.new("RGB", (32, 32), "blue"),
                           meta={"seed": seed}) for p in perturbed for seed in seeds]
    pairs_store(job=job, generator=generator, pairs=items)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


def test_register_a_generator_with_defaults_filled_in(api):
    response = api.post(GENERATORS, {"name": "FLUX.1-dev bf16", "backend": "diffusers",
                                     "settings": {"model": "/models/flux1-dev", "steps": 28}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["settings"]["guidance"] == 3.5 and body["settings"]["steps"] == 28 and body["pair_count"] == 0
    assert body["created_by"] == "res"
    listed = api.get(GENERATORS, {"backend": "diffusers"}).json()["results"]
    assert [g["name"] for g in listed] == ["FLUX.1-dev bf16"]


@pytest.mark.parametrize(("payload", "field", "text"), [
    ({"name": "x", "backend": "diffusers", "settings": {"model": "/m", "steps": 0}}, "settings",
     "steps: must be at least 1."),
    ({"name": "x", "backend": "diffusers", "settings": {"model": "/m", "sampler": "euler"}}, "settings",
     "sampler: unknown setting for the diffusers backend."),
    ({"name": "x", "backend": "diffusers", "settings": {}}, "settings", "model: a local pipeline folder"),
    ({"name": "x", "backend": "diffusers", "settings": {"model": "/m\x00"}}, "settings", "NUL"),  # jsonb refuses it
    ({"name": "x", "backend": "midjourney"}, "backend", "midjourney"),
    ({"backend": "scene-renderer"}, "name", "required"),
])
def test_bad_generator_payloads_name_the_field_and_store_nothing(api, payload, field, text):
    response = api.post(GENERATORS, payload, format="json")
    assert response.status_code == 400
    assert text in " ".join(map(str, response.json()[field]))
    assert Generator.objects.count() == 0


def test_settings_change_until_the_first_pair_then_are_frozen(api):
    generator = GeneratorFactory()
    url = f"{GENERATORS}{generator.pk}/"
    response = api.patch(url, {"settings": {"width": 128}}, format="json")
    assert response.status_code == 200 and response.json()["settings"]["width"] == 128
    assert api.patch(url, {"backend": "diffusers"}, format="json").status_code == 400
    prompt_set = perturbed_prompt_set(count=2)
    store_pairs(generator, PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set)[:1])
    response = api.patch(url, {"settings": {"width": 256}}, format="json")
    assert response.status_code == 400 and "frozen" in response.json()["settings"][0]
    response = api.patch(url, {"enabled": False}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert api.get(url).json()["pair_count"] == 1


def test_pairs_list_filters_and_image_urls(api):
    prompt_set = perturbed_prompt_set(count=8, seed=2, edits="2-3")
    other_set = perturbed_prompt_set(count=3, seed=9, name="other")
    a, b = GeneratorFactory(), GeneratorFactory()
    job = JobFactory(kind="generate_pairs", queue="gpu")
    perturbed = list(PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).order_by("pk"))
    store_pairs(a, perturbed, job=job, seeds=(0, 1))
    store_pairs(b, perturbed[:2])
    store_pairs(b, PerturbedPrompt.objects.filter(prompt__prompt_set=other_set))
    pairs = Pair.objects.all()

    assert ids(api.get(PAIRS, {"job": job.pk})) == sorted(pairs.filter(job=job).values_list("pk", flat=True))
    assert ids(api.get(PAIRS, {"generator": b.pk})) == sorted(pairs.filter(generator=b).values_list("pk", flat=True))
    assert ids(api.get(PAIRS, {"prompt_set": other_set.pk})) == sorted(
        pairs.filter(prompt__prompt_set=other_set).values_list("pk", flat=True))
    assert ids(api.get(PAIRS, {"n_edits": "2-3"})) == sorted(pairs.filter(n_edits__gte=2).values_list("pk", flat=True))
    edit = PerturbationEdit.objects.filter(perturbed__prompt__prompt_set=prompt_set).first()
    with_rule = {p.pk for p in pairs if p.perturbed.edits.filter(rule=edit.rule).exists()}
    assert set(ids(api.get(PAIRS, {"rule": edit.rule_id}))) == with_rule and with_rule
    assert api.get(PAIRS, {"n_edits": "4"}).status_code == 400

    row = api.get(f"{PAIRS}{pairs.filter(generator=a).first().pk}/").json()
    pair = Pair.objects.get(pk=row["id"])
    assert row["prompt_text"] == pair.prompt.text and row["perturbed_text"] == pair.perturbed.text
    image = api.get(row["images"]["winner"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert Image.open(__import__("io").BytesIO(b"".join(image.streaming_content))).getpixel((0, 0)) == (255, 0, 0)
    for which in ("loser", "winner_thumb", "loser_thumb"):
        assert row["images"][which].startswith(f"http://testserver{PAIRS}{row['id']}/image/")
        assert "winner" not in Pair.objects.get(pk=row["id"]).winner_image


def test_pair_list_costs_the_same_queries_for_more_rows(api):
    prompt_set = perturbed_prompt_set(count=12, seed=4)
    generator = GeneratorFactory()
    perturbed = list(PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set))
    store_pairs(generator, perturbed[:2])

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(PAIRS).status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    store_pairs(generator, perturbed[2:])
    assert queries() == few


def test_failures_and_generation_jobs_over_rest(api):
    prompt_set = perturbed_prompt_set(count=3, seed=6)
    generator = GeneratorFactory()
    job = JobFactory(kind="generate_pairs", queue="gpu")
    perturbed = list(PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).select_related("prompt"))
    generation_failures_record(job=job, generator=generator, failures=[(perturbed[0], 4)], error="CUDA OOM")
    rows = api.get(FAILURES, {"job": job.pk}).json()["results"]
    assert [(r["perturbed"], r["seed"], r["error"], r["prompt_text"]) for r in rows] == [
        (perturbed[0].pk, 4, "CUDA OOM", perturbed[0].prompt.text)]

    bad = api.post("/api/v1/jobs/", {"kind": "generate_pairs", "params": {"prompt_set": prompt_set.pk}},
                   format="json")
    assert bad.status_code == 400 and "generators" in " ".join(bad.json()["params"])
    assert not Job.objects.filter(kind="generate_pairs").exclude(pk=job.pk).exists()


def test_only_the_research_team_sees_generation(annotator):
    generator = GeneratorFactory()
    client = token_client(annotator)
    for url in (GENERATORS, PAIRS, FAILURES, f"{GENERATORS}{generator.pk}/"):
        assert client.get(url).status_code == 403
    assert client.post(GENERATORS, {"name": "x", "backend": "scene-renderer"}, format="json").status_code == 403
