"""Generators and pair storage: settings validation, frozen settings, the unique constraint, file names,
and no file left behind by a failed store."""

import io
import os

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image

from ml.generation.settings import validate_settings
from spatiallab.generation.models import GenerationFailure, Generator, Pair
from spatiallab.generation.services import (
    GeneratedPair,
    generation_failures_record,
    generator_create,
    generator_update,
    generators_ensure_demo,
    pair_file_names,
    pair_files,
    pairs_existing,
    pairs_store,
)
from spatiallab.prompts.models import PerturbedPrompt, Prompt, PromptSet
from tests.factories import GeneratorFactory, JobFactory


def perturbed_prompts(count: int) -> list[PerturbedPrompt]:
    prompt_set = PromptSet.objects.create(name=f"set-{count}")
    items = []
    for i in range(count):
        prompt = Prompt.objects.create(prompt_set=prompt_set, position=i, text=f"a mug left of a cup {i}",
                                       normalized_text=f"a mug left of a cup {i}")
        items.append(PerturbedPrompt.objects.create(prompt=prompt, text=f"a mug right of a cup {i}",
                                                    normalized_text=f"a mug right of a cup {i}", n_edits=1, seed=0))
    return items


def generated(perturbed: PerturbedPrompt, seed: int, colour=(200, 10, 10)) -> GeneratedPair:
    return GeneratedPair(perturbed_id=perturbed.pk, prompt_id=perturbed.prompt_id, n_edits=perturbed.n_edits,
                         seed=seed, winner=Image.new("RGB", (40, 30), colour), loser=Image.new("RGB", (40, 30)),
                         meta={"seed": seed})


def stored_files() -> set[str]:
    root = default_storage.path("")
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


# --- Settings ---------------------------------------------------------------------------------------------


def test_settings_are_completed_with_defaults_and_checked_field_by_field():
    settings, errors = validate_settings("diffusers", {"model": "/models/flux", "steps": "6", "batch_size": 8})
    assert not errors and settings["steps"] == 6 and settings["guidance"] == 3.5 and settings["dtype"] == "bfloat16"
    _, errors = validate_settings("diffusers", {"model": "/m", "steps": 0, "dtype": "int8", "width": 1000,
                                                "device": "tpu", "colour": 1})
    assert errors == {"colour": "unknown setting for the diffusers backend.", "steps": "must be at least 1.",
                      "dtype": "must be one of float32, float16, bfloat16."}
    _, errors = validate_settings("diffusers", {"model": "/m", "width": 1000, "device": "tpu"})
    assert errors == {"width": "must be a multiple of 16.", "device": "must be auto, cpu, cuda or cuda:N."}
    assert validate_settings("diffusers", {})[1] == {"model": "a local pipeline folder (or a hub id) is required."}
    assert validate_settings("diffusers", {"model": "/m", "batch_size": 3})[1] == {
        "batch_size": "must be even: a perfect and a perturbed image share each batch."}
    assert validate_settings("scene-renderer", {"labels": "maybe"})[1] == {"labels": "must be true or false."}
    assert validate_settings("scene-renderer", {"width": 1.5})[1] == {"width": "must be a whole number."}
    assert validate_settings("nope", {})[1] == {"backend": "unknown backend 'nope'; known: diffusers, scene-renderer."}


@pytest.mark.django_db
def test_generator_create_names_the_bad_setting_and_stores_nothing():
    with pytest.raises(ValidationError) as info:
        generator_create(name="flux", backend="diffusers", settings={"model": "/m", "steps": -1})
    assert info.value.message_dict == {"settings": ["steps: must be at least 1."]}
    with pytest.raises(ValidationError) as info:
        generator_create(name="flux", backend="dalle", settings={})
    assert "backend" in info.value.message_dict
    with pytest.raises(ValidationError) as info:
        generator_create(name=" ", backend="scene-renderer")
    assert "name" in info.value.message_dict
    assert Generator.objects.count() == 0
    generator_create(name="flux", backend="diffusers", settings={"model": "/m"})
    with pytest.raises(ValidationError) as info:
        generator_create(name="flux", backend="scene-renderer")
    assert info.value.message_dict == {"name": ["A generator named 'flux' exists already."]}
    with pytest.raises(ValidationError) as info:  # every problem at once
        generator_create(name="flux", backend="scene-renderer", settings={"width": 1})
    assert info.value.message_dict == {"name": ["A generator named 'flux' exists already."],
                                       "settings": ["width: must be at least 64."]}


@pytest.mark.django_db
def test_settings_are_frozen_once_the_generator_made_a_pair():
    generator = generator_create(name="r", backend="scene-renderer", settings={"width": 64})
    generator_update(generator=generator, settings={"width": 128})
    assert Generator.objects.get().settings["width"] == 128
    pairs_store(job=None, generator=generator, pairs=[generated(perturbed_prompts(1)[0], 0)])
    with pytest.raises(ValidationError) as info:
        generator_update(generator=generator, settings={"width": 256})
    assert "frozen" in info.value.message_dict["settings"][0]
    generator_update(generator=generator, settings={"width": 128}, enabled=False, description="old")
    generator.refresh_from_db()
    assert generator.settings["width"] == 128 and not generator.enabled and generator.description == "old"


@pytest.mark.django_db
def test_demo_generators_are_created_once():
    first = generators_ensure_demo()
    second = generators_ensure_demo()
    assert [g.pk for g in first] == [g.pk for g in second] and Generator.objects.count() == 2
    assert {g.backend for g in first} == {"scene-renderer"}


# --- Pairs and files ----------------------------------------------------------------------------------------


def test_file_names_are_deterministic_and_do_not_reveal_the_winner(settings):
    names = pair_file_names(generator_id=3, perturbed_id=1234, seed=7, fmt="png")
    assert names == pair_file_names(generator_id=3, perturbed_id=1234, seed=7, fmt="png")
    assert len(set(names.values())) == 4
    for name in names.values():
        assert "winner" not in name and "loser" not in name and "perfect" not in name
    assert names != pair_file_names(generator_id=3, perturbed_id=1234, seed=8, fmt="png")
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-000000000000"
    assert names["winner_image"] != pair_file_names(generator_id=3, perturbed_id=1234, seed=7, fmt="png")[
        "winner_image"]


@pytest.mark.django_db
def test_storing_pairs_twice_stores_each_once_and_keeps_one_set_of_files():
    generator = GeneratorFactory()
    items = perturbed_prompts(3)
    job = JobFactory()
    assert pairs_store(job=job, generator=generator, pairs=[generated(p, s) for p in items for s in (0, 1)]) == 6
    files = stored_files()
    assert len(files) == 24
    assert pairs_store(job=job, generator=generator, pairs=[generated(p, 1) for p in items]) == 0
    assert Pair.objects.count() == 6 and stored_files() == files
    assert files == {name for pair in Pair.objects.all() for name in pair_files(pair)}
    assert pairs_existing(generator=generator, perturbed_ids=[items[0].pk], seeds=[1, 2]) == {(items[0].pk, 1)}
    pair = Pair.objects.get(perturbed=items[0], seed=0)
    assert Image.open(default_storage.open(pair.winner_image)).getpixel((0, 0)) == (200, 10, 10)
    thumb = Image.open(default_storage.open(pair.winner_thumb))
    assert thumb.format == "WEBP" and thumb.size == (40, 30)  # never enlarged
    assert pair.job == job and pair.n_edits == 1 and pair.prompt_id == items[0].prompt_id


@pytest.mark.django_db
def test_the_unique_constraint_refuses_a_second_pair_for_the_same_generator_prompt_and_seed():
    generator = GeneratorFactory()
    perturbed = perturbed_prompts(1)[0]
    pairs_store(job=None, generator=generator, pairs=[generated(perturbed, 5)])
    twin = Pair.objects.get()
    twin.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


@pytest.mark.django_db
def test_webp_generators_store_webp_images():
    generator = GeneratorFactory(settings={"width": 96, "height": 96, "image_format": "webp", "batch_size": 8})
    pairs_store(job=None, generator=generator, pairs=[generated(perturbed_prompts(1)[0], 0)])
    pair = Pair.objects.get()
    assert pair.winner_image.endswith(".webp")
    image = Image.open(default_storage.open(pair.winner_image))
    assert image.format == "WEBP" and image.getpixel((5, 5)) == (200, 10, 10)  # lossless


@pytest.mark.django_db
def test_a_store_that_fails_leaves_no_files_and_no_rows():
    generator = GeneratorFactory()
    items = perturbed_prompts(2)
    bad = generated(items[1], 0)
    bad.meta = {"layout": object()}  # a backend handing over metadata that is not JSON: the insert fails
    with pytest.raises(TypeError):
        pairs_store(job=None, generator=generator, pairs=[generated(items[0], 0), bad])
    assert Pair.objects.count() == 0
    assert stored_files() == set()


@pytest.mark.django_db
def test_failures_are_recorded_once_per_job_with_both_prompts():
    generator = GeneratorFactory()
    items = perturbed_prompts(2)
    job = JobFactory()
    for _ in range(2):  # a resumed job records the same failures again
        generation_failures_record(job=job, generator=generator, failures=[(p, 3) for p in items], error="boom")
    failures = list(GenerationFailure.objects.order_by("pk"))
    assert len(failures) == 2
    assert failures[0].prompt_text == items[0].prompt.text and failures[0].perturbed_text == items[0].text
    assert failures[0].seed == 3 and failures[0].error == "boom"


def test_generation_jobs_show_their_rate_in_pairs_per_minute():
    from datetime import timedelta

    from django.utils import timezone

    from spatiallab.jobs.models import Job, JobStatus

    now = timezone.now()
    running = {"status": JobStatus.RUNNING, "run_started_at": now - timedelta(seconds=60), "progress_done": 30}
    assert Job(kind="generate_pairs", **running).rate_display(now) == "30.0 pairs/min"
    assert Job(kind="demo_primes", **running).rate_display(now) == "0.50 steps/s"
    assert Job(kind="perturb_prompt_set", **running).rate_display(now) == "0.50 prompts/s"
    assert Job(kind="generate_pairs", status=JobStatus.QUEUED).rate_display(now) == "–"


@pytest.mark.django_db
def test_pairs_go_through_the_storage_api_and_object_storage_is_served_by_its_own_urls(settings, client, researcher):
    """Any Django storage works (S3 through django-storages in production): images are written and served
    through the storage API; with object storage the browser is redirected to the storage's own URL."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    from django.core.files.storage import storages

    generator = GeneratorFactory()
    pairs_store(job=None, generator=generator, pairs=[generated(perturbed_prompts(1)[0], 0)])
    pair = Pair.objects.get()
    assert storages["default"].exists(pair.winner_image) and storages["default"].exists(pair.loser_thumb)
    assert not os.path.exists(settings.MEDIA_ROOT)  # nothing on disk
    client.force_login(researcher)
    response = client.get(f"/dashboard/pairs/{pair.pk}/image/winner/")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).getpixel((0, 0)) == (200, 10, 10)
    settings.STORAGE_BACKEND = "s3"
    response = client.get(f"/dashboard/pairs/{pair.pk}/image/loser-thumb/")
    assert response.status_code == 302 and response["Location"] == storages["default"].url(pair.loser_thumb)
