"""Pair generation through real Celery workers: the scene renderer end to end, a worker killed mid-job, a
failing batch, and the diffusers backend with tiny pipelines built from configs."""

import os

import pytest
from django.core.files.storage import default_storage
from PIL import Image, ImageChops

from ml.render.backend import follows
from ml.spatial.parser import parse
from spatiallab.generation.models import GenerationFailure, Pair
from spatiallab.generation.services import pair_files
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import job_cancel, job_create, jobs_requeue_stale
from spatiallab.prompts.models import PerturbedPrompt
from tests.factories import GeneratorFactory
from tests.generation_data import perturbed_prompt_set
from tests.worker_procs import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def stored_files() -> set[str]:
    root = default_storage.path("")
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


def finished(job: Job, timeout: float = 120) -> Job:
    wait_for(lambda: Job.objects.get(pk=job.pk).status not in (JobStatus.QUEUED, JobStatus.RUNNING),
             timeout=timeout, message=f"job {job.pk} to finish")
    job.refresh_from_db()
    return job


def image(name: str) -> Image.Image:
    with default_storage.open(name) as handle:
        return Image.open(handle).convert("RGB")


def test_renderer_job_makes_every_pair_once_with_ground_truth(workers, researcher):
    prompt_set = perturbed_prompt_set(count=10, seed=3)
    n_perturbed = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    exact = GeneratorFactory(name="exact")
    broken = GeneratorFactory(name="broken", settings={"width": 96, "height": 96, "break_fraction": 1.0,
                                                       "labels": False, "batch_size": 4, "image_format": "webp"})
    workers.start(queues="gpu")
    params = {"prompt_set": prompt_set.pk, "generators": [exact.pk, broken.pk], "seeds": 2, "seed": 10}
    job = finished(job_create(kind="generate_pairs", params=params, created_by=researcher))

    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = n_perturbed * 2 * 2
    assert job.result["pairs"] == Pair.objects.count() == expected
    assert job.progress_done == job.progress_total == expected
    assert job.result["failed"] == 0 and job.result["seeds"] == [10, 11]
    assert stored_files() == {name for pair in Pair.objects.all() for name in pair_files(pair)}
    assert Pair.objects.filter(generator=broken, winner_image__endswith=".webp").count() == expected // 2

    for pair in Pair.objects.select_related("perturbed", "prompt"):
        assert pair.job_id == job.pk and pair.n_edits == pair.perturbed.n_edits
        assert pair.meta["perfect_text"] == pair.prompt.text and pair.meta["perturbed_text"] == pair.perturbed.text
        assert len(pair.meta["edits"]) == pair.n_edits and pair.meta["seed"] == pair.seed
        winner, loser = image(pair.winner_image), image(pair.loser_image)
        assert winner.size == loser.size == (96, 96)
        assert ImageChops.difference(winner, loser).getbbox() is not None, "the pair must differ"
    # Without breaks each image follows its own prompt wherever the layout could satisfy it, so the winner
    # follows the perfect prompt. Whether the loser breaks it depends on the perturbation: a moved anchor can
    # leave the original relation implied by the rest of the prompt, and the ground truth flags such pairs.
    exact_pairs = list(Pair.objects.filter(generator=exact).select_related("perturbed"))
    for pair in exact_pairs:
        render = pair.meta["render"]
        if not render["winner"]["unsatisfied"]:
            assert pair.meta["ground_truth"]["winner"]["follows"], pair.pk
        if not render["loser"]["unsatisfied"]:
            perturbed_graph = parse(pair.perturbed.text)
            assert follows(perturbed_graph, render["loser"])["follows"], pair.pk
    assert sum(bool(p.ground_truth_ok) for p in exact_pairs) >= 0.6 * len(exact_pairs)
    broken_pairs = list(Pair.objects.filter(generator=broken))
    assert all(p.meta["ground_truth"]["winner"]["broken"] for p in broken_pairs)
    assert sum(bool(p.ground_truth_ok) for p in broken_pairs) <= 0.1 * len(broken_pairs)

    # Same seeds again: nothing new, nothing rewritten.
    files = {name: default_storage.get_modified_time(name) for name in stored_files()}
    again = finished(job_create(kind="generate_pairs", params=params, created_by=researcher))
    assert again.status == JobStatus.SUCCEEDED
    assert again.result["pairs"] == 0 and again.result["skipped_existing"] == expected
    assert Pair.objects.count() == expected
    assert {name: default_storage.get_modified_time(name) for name in stored_files()} == files


def test_killed_worker_resumes_without_duplicate_pairs_or_orphaned_files(workers, researcher):
    prompt_set = perturbed_prompt_set(count=80, seed=5, max_objects=8, max_relations=7)
    n_perturbed = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    generator = GeneratorFactory(settings={"width": 384, "height": 384, "labels": True, "batch_size": 2})
    first = workers.start(queues="gpu")
    job = job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk, "generators": [generator.pk],
                                                    "seeds": 2}, created_by=researcher)
    total = n_perturbed * 2
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 12, timeout=90, message="some pairs")
    first.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.progress_done < total, "killed too late to test a resume"
    made_before = Pair.objects.count()

    workers.start(queues="gpu")
    assert jobs_requeue_stale(stale_seconds=0) == [job.pk]
    job = finished(job, timeout=180)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert Pair.objects.count() == total > made_before
    assert Pair.objects.values("perturbed", "seed").distinct().count() == total
    assert stored_files() == {name for pair in Pair.objects.all() for name in pair_files(pair)}


def test_cancelling_a_generation_stops_it_between_batches_with_every_stored_pair_complete(workers, researcher):
    prompt_set = perturbed_prompt_set(count=60, seed=6, max_objects=8, max_relations=7)
    total = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count() * 2
    generator = GeneratorFactory(settings={"width": 384, "height": 384, "labels": True, "batch_size": 2})
    workers.start(queues="gpu")
    job = job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk, "generators": [generator.pk],
                                                    "seeds": 2}, created_by=researcher)
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 4, timeout=90, message="some pairs")
    job_cancel(job=job)
    job = finished(job)
    assert job.status == JobStatus.CANCELLED
    stored = Pair.objects.filter(job=job).count()
    assert 4 <= stored < total
    assert stored_files() == {name for pair in Pair.objects.all() for name in pair_files(pair)}


def test_a_failing_batch_is_recorded_with_its_prompt_and_the_rest_is_stored(workers, researcher):
    prompt_set = perturbed_prompt_set(count=6, seed=7)
    perturbed = list(PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).select_related("prompt"))
    victim = perturbed[2].prompt
    victim.graph = {"objects": "not a graph"}  # a corrupted row: rendering this prompt raises
    victim.save(update_fields=["graph"])
    generator = GeneratorFactory(settings={"width": 64, "height": 64, "labels": False, "batch_size": 2})
    workers.start(queues="gpu")
    job = finished(job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk,
                                                             "generators": [generator.pk]}, created_by=researcher))
    assert job.status == JobStatus.SUCCEEDED, job.error
    failing = [p for p in perturbed if p.prompt_id == victim.pk]
    assert job.result["failed"] == len(failing) and job.result["failed_batches"] == len(failing)
    assert job.result["pairs"] == Pair.objects.count() == len(perturbed) - len(failing)
    failure = GenerationFailure.objects.get(perturbed=failing[0])
    assert failure.job_id == job.pk and failure.prompt_text == victim.text and "Traceback" in failure.error
    assert not Pair.objects.filter(prompt=victim).exists()


def test_a_generator_that_fails_every_batch_fails_the_job(workers, researcher):
    prompt_set = perturbed_prompt_set(count=8, seed=8)
    for perturbed in PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).select_related("prompt"):
        perturbed.prompt.graph = {"objects": "not a graph"}
        perturbed.prompt.save(update_fields=["graph"])
    generator = GeneratorFactory(settings={"width": 64, "height": 64, "batch_size": 2})
    workers.start(queues="gpu")
    job = finished(job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk,
                                                             "generators": [generator.pk]}, created_by=researcher))
    assert job.status == JobStatus.FAILED
    assert "Traceback" in job.error
    assert GenerationFailure.objects.filter(job=job).count() == 3  # three batches in a row, then it stops
    assert Pair.objects.count() == 0


def test_diffusers_generators_by_path_same_seed_same_image_and_no_reload(workers, researcher, tmp_path):
    from ml.generation.tiny import build_tiny_flux, build_tiny_sd3

    flux = build_tiny_flux(tmp_path / "flux")
    sd3 = build_tiny_sd3(tmp_path / "sd3")
    prompt_set = perturbed_prompt_set(count=3, seed=11)
    n_perturbed = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    common = {"device": "cpu", "dtype": "float32", "steps": 2, "guidance": 3.5, "width": 32, "height": 32,
              "batch_size": 4}
    flux_a = GeneratorFactory(name="flux-a", backend="diffusers", settings={"model": str(flux), **common})
    # Registered by a name below MODELS_DIR (the worker's model volume) rather than by absolute path.
    flux_b = GeneratorFactory(name="flux-b", backend="diffusers", settings={"model": "flux", **common})
    sd3_gen = GeneratorFactory(name="sd3", backend="diffusers", settings={"model": str(sd3), **common})
    worker = workers.start(queues="gpu", extra_env={"MODELS_DIR": str(tmp_path)})
    params = {"prompt_set": prompt_set.pk, "generators": [flux_a.pk, flux_b.pk, sd3_gen.pk], "seeds": 2}
    job = finished(job_create(kind="generate_pairs", params=params, created_by=researcher), timeout=240)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Pair.objects.count() == job.result["pairs"] == n_perturbed * 3 * 2

    for pair in Pair.objects.filter(generator=flux_a):
        twin = Pair.objects.get(generator=flux_b, perturbed=pair.perturbed, seed=pair.seed)
        # Same pipeline, prompt, seed and settings: the same image, bit for bit.
        assert image(pair.winner_image).tobytes() == image(twin.winner_image).tobytes()
        assert image(pair.loser_image).tobytes() == image(twin.loser_image).tobytes()
        # Different prompts (perfect vs perturbed) with the same seed: different images.
        assert image(pair.winner_image).tobytes() != image(pair.loser_image).tobytes()
        other_seed = Pair.objects.get(generator=flux_a, perturbed=pair.perturbed, seed=1 - pair.seed)
        assert image(pair.winner_image).tobytes() != image(other_seed.winner_image).tobytes()
        assert pair.meta["backend_meta"]["steps"] == 2
    assert Pair.objects.filter(generator=sd3_gen).count() == n_perturbed * 2

    # The worker loaded each generator once; a second job for the last one loads nothing.
    assert worker.output().count("loading diffusers backend") == 3
    again = finished(job_create(kind="generate_pairs", params={**params, "generators": [sd3_gen.pk], "seed": 5},
                                created_by=researcher), timeout=240)
    assert again.status == JobStatus.SUCCEEDED and again.result["pairs"] == n_perturbed * 2
    assert worker.output().count("loading diffusers backend") == 3


def test_generation_job_params_name_every_problem(researcher):
    from django.core.exceptions import ValidationError

    prompt_set = perturbed_prompt_set(count=2, seed=2)
    disabled = GeneratorFactory(enabled=False)
    with pytest.raises(ValidationError) as info:
        job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk, "generators": [disabled.pk, 999],
                                                  "seeds": 0, "rules": [123456]}, created_by=researcher)
    messages = " ".join(info.value.message_dict["params"])
    assert "generators: No generator with id 999." in messages
    assert "seeds:" in messages and "rules: No perturbation rule with id 123456." in messages
    empty = perturbed_prompt_set(count=1, seed=4, name="other")
    PerturbedPrompt.objects.filter(prompt__prompt_set=empty).delete()
    with pytest.raises(ValidationError) as info:
        job_create(kind="generate_pairs", params={"prompt_set": empty.pk, "generators": [GeneratorFactory().pk]},
                   created_by=researcher)
    assert "No perturbed prompts match" in " ".join(info.value.message_dict["params"])
    assert Job.objects.count() == 0
