"""Scoring with a reward checkpoint: the services' validation (every bad input names its field, nothing is stored),
uploads scored end to end through the score_images handler with a tiny trained checkpoint (the stored mu is the
model's own prediction, ranked by mu), best-of-n with the scene renderer, the REST endpoints, the dashboard pages,
a real Celery worker, and a failed or cancelled job marking its request."""

import hashlib
import io
import math
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from spatiallab.datasets.models import DatasetVersion
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import job_cancel
from spatiallab.rewards import scoring
from spatiallab.rewards.models import RewardCheckpoint, RewardRun, ScoreRequest, ScoreRequestKind
from spatiallab.rewards.scoring import UploadedImage, pair_prompts, score_request_best_of_n, score_request_upload
from tests.dataset_data import run_job_inline
from tests.factories import GeneratorFactory, token_client
from tests.worker_procs import wait_for

PX = 112  # 16 visual tokens per image: fast on CPU
PROMPT = "a red mug to the left of a blue kettle"
COLOURS = [(220, 30, 30), (30, 60, 220), (30, 200, 60), (230, 220, 40)]


# --- Fixtures -----------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny SpatialScore trained for a few steps on coloured squares (the real trainer), its last checkpoint."""
    from ml.reward.config import ModelConfig, TrainConfig
    from ml.reward.tiny import build_tiny_backbone
    from ml.reward.train import train
    from tests.ml.reward_data import colour_dataset

    root = tmp_path_factory.mktemp("scoring")
    backbone = build_tiny_backbone(root / "tiny")
    data = colour_dataset(root / "pairs.parquet", train=8, validation=4, test=0)
    summary = train(
        ModelConfig(backbone=str(backbone), lora_rank=4, lora_alpha=8.0, min_pixels=PX * PX, max_pixels=PX * PX),
        TrainConfig(data=str(data), output_dir=str(root / "run"), lr=3e-3, warmup_steps=1, batch_size=2, max_steps=3,
                    log_every=1, save_every=0, eval_every=0, eval_split="validation", eval_batch_size=4,
                    bf16=False, device="cpu"))
    return Path(summary["checkpoint"])


@pytest.fixture(scope="module")
def reference(trained):
    """The checkpoint loaded independently of the worker's cache."""
    from ml.reward.model import SpatialScore

    return SpatialScore.from_checkpoint(trained)


def make_checkpoint(path: Path, name: str = "scoring-run") -> RewardCheckpoint:
    version = DatasetVersion.objects.create(name=f"{name}-data")  # building: the run only needs a version row
    run = RewardRun.objects.create(name=name, dataset_version=version, dataset_hash="", base_model="/models/tiny",
                                   config={})
    return RewardCheckpoint.objects.create(run=run, step=3, path=str(path))


@pytest.fixture
def _runs_removed_before_flush(transactional_db):
    """A transactional test ends with a flush that purges dataset versions first (tests/conftest.py); the runs that
    PROTECT them go before that (this teardown runs before the autouse one)."""
    yield
    RewardRun.objects.all().delete()


@pytest.fixture
def checkpoint(db, trained) -> RewardCheckpoint:
    return make_checkpoint(trained)


def image_bytes(colour, size=(64, 48), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def good_items(count: int = 3) -> list[UploadedImage]:
    formats = ["PNG", "JPEG", "PNG", "WEBP"]
    return [UploadedImage(upload(f"img{i}.{formats[i % 4].lower()}", image_bytes(COLOURS[i % 4], fmt=formats[i % 4])),
                          f"a {['red', 'blue', 'green', 'yellow'][i % 4]} square on the table")
            for i in range(count)]


def stored_names() -> list[str]:
    root = Path(default_storage.path(""))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rgb(name: str) -> Image.Image:
    with default_storage.open(name, "rb") as handle, Image.open(handle) as image:
        return image.convert("RGB")


# --- Validation ---------------------------------------------------------------------------------------------


def _bad_upload(case: str, checkpoint, tmp_path, monkeypatch):
    items = good_items(3)
    if case == "no images":
        return checkpoint, [], "images"
    if case == "too many images":
        return checkpoint, good_items(1) * 65, "images"
    if case == "not an image":
        items[1] = UploadedImage(upload("notes.png", b"hello, I am text"), items[1].prompt)
        return checkpoint, items, "images[1]"
    if case == "truncated":
        items[2] = UploadedImage(upload("cut.png", image_bytes((1, 2, 3), size=(200, 200))[:120]), items[2].prompt)
        return checkpoint, items, "images[2]"
    if case == "too wide":
        items[0] = UploadedImage(upload("wide.png", image_bytes((1, 2, 3), size=(4097, 2))), items[0].prompt)
        return checkpoint, items, "images[0]"
    if case == "too many bytes":
        monkeypatch.setattr(scoring, "MAX_IMAGE_BYTES", 100)
        return checkpoint, items, "images[0]"
    if case == "unsupported format":
        items[1] = UploadedImage(upload("x.tiff", image_bytes((1, 2, 3), fmt="TIFF")), items[1].prompt)
        return checkpoint, items, "images[1]"
    if case == "empty prompt":
        items[1] = UploadedImage(items[1].file, "   ")
        return checkpoint, items, "prompts[1]"
    if case == "long prompt":
        items[0] = UploadedImage(items[0].file, "x" * 2001)
        return checkpoint, items, "prompts[0]"
    if case == "no checkpoint":
        return None, items, "checkpoint"
    if case == "pruned checkpoint":
        checkpoint.path = str(tmp_path / "gone")
        return checkpoint, items, "checkpoint"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no images", "too many images", "not an image", "truncated", "too wide",
                                  "too many bytes", "unsupported format", "empty prompt", "long prompt",
                                  "no checkpoint", "pruned checkpoint"])
def test_a_bad_upload_names_its_field_and_stores_nothing(checkpoint, researcher, tmp_path, monkeypatch, case):
    chosen, items, field = _bad_upload(case, checkpoint, tmp_path, monkeypatch)
    jobs = Job.objects.count()
    with pytest.raises(ValidationError) as error:
        score_request_upload(checkpoint=chosen, files_with_prompts=items, created_by=researcher)
    assert field in error.value.message_dict, error.value.message_dict
    assert ScoreRequest.objects.count() == 0 and Job.objects.count() == jobs and stored_names() == []


def test_a_failure_after_the_files_are_saved_removes_them(checkpoint, researcher, monkeypatch):
    def broken_job_create(**kwargs):
        assert len(stored_names()) == 3  # the files were there
        raise RuntimeError("broker down")

    monkeypatch.setattr(scoring, "job_create", broken_job_create)
    with pytest.raises(RuntimeError):
        score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(3), created_by=researcher)
    assert ScoreRequest.objects.count() == 0 and stored_names() == []


def test_prompts_pair_with_images_one_each_or_one_for_all():
    files = ["a", "b"]
    assert [item.prompt for item in pair_prompts(files, ["p", "q"], None)] == ["p", "q"]
    assert [item.prompt for item in pair_prompts(files, [], "all")] == ["all", "all"]
    for prompts, prompt, field in ((["p"], None, "prompts"), (["p", "q"], "all", "prompt"), ([], "", "prompts")):
        with pytest.raises(ValidationError) as error:
            pair_prompts(files, prompts, prompt)
        assert field in error.value.message_dict


@pytest.mark.parametrize(("overrides", "field"), [
    ({"checkpoint": None}, "checkpoint"),
    ({"generator": None}, "generator"),
    ({"prompt": " "}, "prompt"),
    ({"prompt": "x" * 2001}, "prompt"),
    ({"prompt": "hello world"}, "prompt"),  # the renderer finds nothing to draw in it
    ({"n": 1}, "n"),
    ({"n": 65}, "n"),
    ({"n": "4"}, "n"),
    ({"seed": -1}, "seed"),
])
def test_a_bad_best_of_n_names_its_field_and_stores_nothing(checkpoint, researcher, overrides, field):
    arguments = {"checkpoint": checkpoint, "generator": GeneratorFactory(), "prompt": PROMPT, "n": 4, "seed": 0,
                 "created_by": researcher, **overrides}
    with pytest.raises(ValidationError) as error:
        score_request_best_of_n(**arguments)
    assert list(error.value.message_dict) == [field]
    assert ScoreRequest.objects.count() == 0 and Job.objects.count() == 0


def test_a_disabled_generator_is_refused(checkpoint, researcher):
    with pytest.raises(ValidationError) as error:
        score_request_best_of_n(checkpoint=checkpoint, generator=GeneratorFactory(enabled=False), prompt=PROMPT, n=3,
                                created_by=researcher)
    assert "disabled" in error.value.message_dict["generator"][0]


# --- Scoring through the handler ----------------------------------------------------------------------------


def test_uploads_are_scored_by_the_checkpoint_and_ranked_by_mu(checkpoint, researcher, reference, settings):
    settings.REWARD_SCORE_BATCH = 2  # three images: two batches
    items = good_items(3)
    uploaded = [item.file.read() for item in items]
    request = score_request_upload(checkpoint=checkpoint, files_with_prompts=items, created_by=researcher)
    assert request.status == JobStatus.QUEUED and request.job.kind == "score_images" and request.job.queue == "gpu"
    assert [item["name"] for item in request.images] == [f"score-requests/{request.pk}/{i}.{ext}"
                                                         for i, ext in enumerate(["png", "jpg", "png"])]
    for item, data in zip(request.images, uploaded, strict=True):  # stored byte for byte
        with default_storage.open(item["name"], "rb") as handle:
            assert handle.read() == data

    result = run_job_inline(request.job)
    request.refresh_from_db()
    job = Job.objects.get(pk=request.job_id)
    assert request.status == JobStatus.SUCCEEDED and (job.progress_done, job.progress_total) == (3, 3)
    assert [row["rank"] for row in request.results] == [1, 2, 3]
    mus = [row["mu"] for row in request.results]
    assert mus == sorted(mus, reverse=True) and result["best"]["index"] == request.results[0]["index"]

    # The model's own prediction, computed here independently of the worker's cached model.
    prompts = [item["prompt"] for item in request.images]
    expected = reference.predict(prompts, [rgb(item["name"]) for item in request.images])
    by_index = {row["index"]: row for row in request.results}
    for index in range(3):
        row = by_index[index]
        assert row["prompt"] == prompts[index] and row["image"] == request.images[index]["name"]
        assert row["seed"] is None
        assert row["mu"] == pytest.approx(expected.mu[index].item(), abs=1e-5)
        assert row["sigma"] == pytest.approx(math.exp(expected.log_sigma[index].item()), rel=1e-5)
    assert len(set(mus)) == 3  # the images and prompts differ: so do the scores


def test_best_of_n_with_the_scene_renderer_ranks_n_distinct_samples(checkpoint, researcher, reference):
    generator = GeneratorFactory()
    request = score_request_best_of_n(checkpoint=checkpoint, generator=generator, prompt=PROMPT, n=4, seed=7,
                                      created_by=researcher)
    run_job_inline(request.job)
    request.refresh_from_db()
    job = Job.objects.get(pk=request.job_id)
    assert request.status == JobStatus.SUCCEEDED and (job.progress_done, job.progress_total) == (8, 8)
    rows = request.results
    assert sorted(row["seed"] for row in rows) == [7, 8, 9, 10]
    assert {row["image"] for row in rows} == {f"score-requests/{request.pk}/sample-{k}.png" for k in range(4)}
    assert all(row["seed"] == 7 + row["index"] for row in rows)
    digests = {hashlib.sha256(rgb(row["image"]).tobytes()).hexdigest() for row in rows}
    assert len(digests) == 4  # four different samples
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    assert [row["mu"] for row in rows] == sorted((row["mu"] for row in rows), reverse=True)
    expected = reference.predict([PROMPT] * 4, [rgb(row["image"]) for row in rows])
    assert [row["mu"] for row in rows] == pytest.approx(expected.mu.tolist(), abs=1e-5)

    # The same request again: the same samples and scores (deterministic in settings, prompt and seed).
    again = score_request_best_of_n(checkpoint=checkpoint, generator=generator, prompt=PROMPT, n=4, seed=7,
                                    created_by=researcher)
    run_job_inline(again.job)
    again.refresh_from_db()
    assert [(r["seed"], r["rank"]) for r in again.results] == [(r["seed"], r["rank"]) for r in rows]


def test_a_failed_job_marks_the_request_failed_and_a_cancelled_one_cancelled(checkpoint, researcher, monkeypatch):
    from workers.handlers import scoring as handler
    from workers.runner import run_job

    def broken(path):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(handler, "load_scorer", broken)
    request = score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(2), created_by=researcher)
    run_job(request.job_id)
    request.refresh_from_db()
    assert request.status == JobStatus.FAILED and "out of memory" in Job.objects.get(pk=request.job_id).error
    assert request.results == []

    queued = score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(1), created_by=researcher)
    job_cancel(job=queued.job)
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED


# --- REST ---------------------------------------------------------------------------------------------------


def test_annotators_get_403_everywhere(checkpoint, annotator, researcher):
    request = score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(1), created_by=researcher)
    client = token_client(annotator)
    for url in ("/api/v1/score-requests/", f"/api/v1/score-requests/{request.pk}/",
                f"/api/v1/score-requests/{request.pk}/image/0/"):
        assert client.get(url).status_code == 403, url
    assert client.post("/api/v1/score-requests/", {}, format="multipart").status_code == 403
    assert client.post("/api/v1/score-requests/best-of-n/", {}, format="json").status_code == 403


def test_api_upload_poll_and_download(api, checkpoint):
    files = [image_bytes(COLOURS[0]), image_bytes(COLOURS[1], fmt="JPEG")]
    response = api.post("/api/v1/score-requests/", {
        "checkpoint": checkpoint.pk, "images": [upload("a.png", files[0]), upload("b.jpg", files[1], "image/jpeg")],
        "prompts": ["a red square", "a blue square"]}, format="multipart")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "upload" and body["results"] == []
    assert [image["filename"] for image in body["images"]] == ["a.png", "b.jpg"]
    assert body["images"][1]["image_url"].endswith(f"/api/v1/score-requests/{body['id']}/image/1/")

    run_job_inline(ScoreRequest.objects.get(pk=body["id"]).job)
    polled = api.get(f"/api/v1/score-requests/{body['id']}/").json()
    assert polled["status"] == "succeeded" and (polled["progress_done"], polled["progress_total"]) == (2, 2)
    assert [row["rank"] for row in polled["results"]] == [1, 2]
    assert polled["results"][0]["mu"] >= polled["results"][1]["mu"]
    for row in polled["results"]:
        image = api.get(row["image_url"])
        assert image.status_code == 200 and image["Content-Type"] == ("image/png" if row["index"] == 0
                                                                       else "image/jpeg")
        assert b"".join(image.streaming_content) == files[row["index"]]
    assert api.get(f"/api/v1/score-requests/{body['id']}/image/2/").status_code == 404

    one_prompt = api.post("/api/v1/score-requests/", {"checkpoint": checkpoint.pk, "prompt": "a square",
                                                      "images": [upload("c.png", files[0])]}, format="multipart")
    assert one_prompt.status_code == 202 and one_prompt.json()["images"][0]["prompt"] == "a square"


def test_api_errors_name_the_field(api, checkpoint):
    png = image_bytes(COLOURS[0])
    cases = [
        ({"images": [upload("a.png", png)], "prompt": "x"}, "checkpoint"),
        ({"checkpoint": 99999, "images": [upload("a.png", png)], "prompt": "x"}, "checkpoint"),
        ({"checkpoint": checkpoint.pk, "images": [upload("a.png", png), upload("b.png", b"nope")],
          "prompts": ["x", "y"]}, "images[1]"),
        ({"checkpoint": checkpoint.pk, "images": [upload("a.png", png), upload("b.png", png)], "prompts": ["x"]},
         "prompts"),
        ({"checkpoint": checkpoint.pk, "images": [upload("a.png", png)], "prompts": [" "]}, "prompts[0]"),
        ({"checkpoint": checkpoint.pk, "prompt": "x"}, "images"),
    ]
    for data, field in cases:
        response = api.post("/api/v1/score-requests/", data, format="multipart")
        assert response.status_code == 400 and field in response.json(), (field, response.json())
    assert ScoreRequest.objects.count() == 0 and stored_names() == []


def test_api_best_of_n_and_the_list_filters(api, checkpoint, trained):
    generator = GeneratorFactory()
    bad = api.post("/api/v1/score-requests/best-of-n/", {"checkpoint": checkpoint.pk, "generator": generator.pk,
                                                         "prompt": PROMPT, "n": 1}, format="json")
    assert bad.status_code == 400 and "n" in bad.json()
    missing = api.post("/api/v1/score-requests/best-of-n/", {"checkpoint": checkpoint.pk, "prompt": PROMPT, "n": 3},
                       format="json")
    assert missing.status_code == 400 and "generator" in missing.json()
    response = api.post("/api/v1/score-requests/best-of-n/", {"checkpoint": checkpoint.pk, "generator": generator.pk,
                                                              "prompt": PROMPT, "n": 3, "seed": 5}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["kind"], body["n"], body["seed"], body["generator_name"]) == ("best_of_n", 3, 5, generator.name)
    assert api.get(f"/api/v1/score-requests/{body['id']}/image/0/").status_code == 404  # not drawn yet

    other = make_checkpoint(trained, name="other-run")
    api.post("/api/v1/score-requests/", {"checkpoint": other.pk, "prompt": "x",
                                         "images": [upload("a.png", image_bytes(COLOURS[0]))]}, format="multipart")
    ids = lambda query: [row["id"] for row in api.get(f"/api/v1/score-requests/{query}").json()["results"]]  # noqa: E731
    assert len(ids("")) == 2
    assert ids("?kind=best_of_n") == [body["id"]]
    assert ids(f"?checkpoint={other.pk}") != [body["id"]] and len(ids(f"?checkpoint={other.pk}")) == 1
    assert api.get("/api/v1/score-requests/?kind=nonsense").status_code == 400

    run_job_inline(ScoreRequest.objects.get(pk=body["id"]).job)
    done = api.get(f"/api/v1/score-requests/{body['id']}/").json()
    assert done["status"] == "succeeded" and [row["seed"] for row in done["results"]] != []
    first = api.get(done["results"][0]["image_url"])
    assert first.status_code == 200 and first["Content-Type"] == "image/png"


# --- Dashboard pages ----------------------------------------------------------------------------------------


def test_pages_are_for_researchers_only(client, annotator, checkpoint, researcher):
    request = score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(1), created_by=researcher)
    client.force_login(annotator)
    assert client.get("/dashboard/reward-runs/score/").status_code == 403
    assert client.get(f"/dashboard/reward-runs/score/{request.pk}/").status_code == 403


def test_the_best_of_n_form_launches_and_the_page_polls_then_shows_the_ranking(client, researcher, checkpoint):
    generator = GeneratorFactory()
    client.force_login(researcher)
    assert 'href="/dashboard/reward-runs/score/"' in client.get("/dashboard/reward-runs/").content.decode()
    page = client.get("/dashboard/reward-runs/score/")
    assert page.status_code == 200 and "best-of-n-form" in page.content.decode()
    fields = {"form": "best_of_n", "best-checkpoint": checkpoint.pk, "best-generator": generator.pk,
              "best-prompt": PROMPT, "best-n": 3, "best-seed": 0}
    bad = client.post("/dashboard/reward-runs/score/", {**fields, "best-prompt": "hello world"})
    assert bad.status_code == 400 and bad.context["best_form"].errors["prompt"]
    assert ScoreRequest.objects.count() == 0
    good = client.post("/dashboard/reward-runs/score/", fields)
    request = ScoreRequest.objects.get()
    assert good.status_code == 302 and good["Location"] == f"/dashboard/reward-runs/score/{request.pk}/"

    running = client.get(good["Location"])
    assert running.context["poll"] is True and 'hx-trigger="every 1s"' in running.content.decode()
    block = client.get(good["Location"], HTTP_HX_REQUEST="true")
    assert 'id="score-progress"' in block.content.decode() and "HX-Refresh" not in block

    run_job_inline(request.job)
    block = client.get(good["Location"], HTTP_HX_REQUEST="true")
    assert block["HX-Refresh"] == "true"
    finished = client.get(good["Location"])
    body = finished.content.decode()
    assert finished.context["poll"] is False and body.count('class="score-result"') == 3
    assert 'id="score-chart"' in body and "vendor/chartjs/chart.umd.min.js" in body
    assert [row["rank"] for row in finished.context["results"]] == [1, 2, 3]


def test_the_upload_form_scores_files_with_one_prompt_per_line(client, researcher, checkpoint):
    client.force_login(researcher)
    files = [upload("a.png", image_bytes(COLOURS[0])), upload("b.png", image_bytes(COLOURS[1]))]
    bad = client.post("/dashboard/reward-runs/score/", {"form": "upload", "upload-checkpoint": checkpoint.pk,
                                                        "upload-images": files, "upload-prompts": "only one"})
    assert bad.status_code == 400 and "prompts" in bad.context["upload_form"].errors
    files = [upload("a.png", image_bytes(COLOURS[0])), upload("b.png", image_bytes(COLOURS[1]))]
    good = client.post("/dashboard/reward-runs/score/", {"form": "upload", "upload-checkpoint": checkpoint.pk,
                                                         "upload-images": files, "upload-prompts": "red\nblue"})
    request = ScoreRequest.objects.get()
    assert good.status_code == 302 and request.kind == ScoreRequestKind.UPLOAD
    assert [item["prompt"] for item in request.images] == ["red", "blue"]


# --- A real worker ------------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_scores_an_upload(workers, trained, researcher, _runs_removed_before_flush):
    workers.start(queues="gpu")  # also points this process at the worker's broker before the job is sent
    checkpoint = make_checkpoint(trained)
    request = score_request_upload(checkpoint=checkpoint, files_with_prompts=good_items(4), created_by=researcher)
    wait_for(lambda: ScoreRequest.objects.get(pk=request.pk).status not in (JobStatus.QUEUED, JobStatus.RUNNING),
             timeout=180, message="the score request to finish")
    request.refresh_from_db()
    assert request.status == JobStatus.SUCCEEDED, Job.objects.get(pk=request.job_id).error
    assert sorted(row["index"] for row in request.results) == [0, 1, 2, 3]
    assert [row["rank"] for row in request.results] == [1, 2, 3, 4]
    assert [row["mu"] for row in request.results] == sorted((row["mu"] for row in request.results), reverse=True)
