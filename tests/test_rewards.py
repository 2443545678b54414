"""Reward-model training runs: run_create's validation, the API's permissions and errors, and real training runs
of a tiny random backbone through the train_reward handler (in this process): metrics, checkpoints, progress,
cancel, and a worker lost mid-run that resumes from its last checkpoint."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from spatiallab.datasets.services import version_create
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import JobCancelled, job_claim, job_mark_cancelled, jobs_requeue_stale
from spatiallab.rewards.defaults import CHOICES
from spatiallab.rewards.models import RewardCheckpoint, RewardMetric, RewardRun
from spatiallab.rewards.services import MANAGED_FIELDS, config_defaults, run_create
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from tests.factories import token_client
from workers.handlers import rewards as reward_handler
from workers.runner import JobContext

PX = 112  # 16 visual tokens per image: fast on CPU
FAST_MODEL = {"lora_rank": 4, "lora_alpha": 8.0, "min_pixels": PX * PX, "max_pixels": PX * PX}
FAST_TRAIN = {"lr": 1e-3, "warmup_steps": 1, "batch_size": 2, "max_steps": 4, "log_every": 1, "save_every": 2,
              "keep_last": 1, "eval_every": 0, "eval_split": "train", "eval_batch_size": 4, "max_eval_pairs": 4,
              "bf16": False, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def version(db):
    _, queue = verified_pairs(6, name="rewards")
    return build_version("rewards-v1", criteria={"queues": [queue.pk]},
                         ratios={"train": 1.0, "validation": 0.0, "test": 0.0})


def _create(version, reward_backbone, researcher, **overrides):
    return run_create(**{"name": "rm", "dataset_version": version, "base_model": str(reward_backbone),
                         "model_config": dict(FAST_MODEL), "train_config": dict(FAST_TRAIN),
                         "created_by": researcher, **overrides})


# --- Validation -------------------------------------------------------------------------------------------


def test_the_platforms_copy_of_the_defaults_matches_the_dataclasses():
    import dataclasses

    from ml.reward.config import ModelConfig, TrainConfig

    defaults = config_defaults()
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        fields = dataclasses.fields(cls)
        expected = {f.name: getattr(cls(), f.name) for f in fields if f.name not in MANAGED_FIELDS[section]}
        assert defaults[section] == expected
        for f in fields:
            if "choices" in f.metadata:
                assert tuple(f.metadata["choices"]) == CHOICES[f.name]
    # Every combination the service accepts is one the dataclasses accept.
    ModelConfig(**defaults["model"])
    TrainConfig(**defaults["train"])


def test_defaults_are_the_papers():
    defaults = config_defaults()
    assert defaults["train"]["lr"] == 2e-6 and defaults["train"]["loss"] == "bt"
    assert defaults["model"]["head_hidden"] == 16 and defaults["model"]["head_dropout"] == 0.05
    assert "backbone" not in defaults["model"] and "output_dir" not in defaults["train"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"train_config": {"lr": 5.0}}, "train.lr"),
    ({"train_config": {"batch_size": 0}}, "train.batch_size"),
    ({"train_config": {"loss": "hinge"}}, "train.loss"),
    ({"train_config": {"lr": "fast"}}, "train.lr"),
    ({"train_config": {"output_dir": "/tmp/x"}}, "train.output_dir"),
    ({"train_config": {"lr_typo": 1e-3}}, "train.lr_typo"),
    ({"model_config": {"lora_rank": 0}}, "model.lora_rank"),
    ({"model_config": {"dtype": "int4"}}, "model.dtype"),
    ({"model_config": {"min_pixels": 500_000, "max_pixels": 1000}}, "model.min_pixels"),
    ({"name": "  "}, "name"),
])
def test_run_create_names_the_bad_field_and_stores_nothing(version, reward_backbone, researcher, overrides, field):
    jobs = Job.objects.count()
    with pytest.raises(ValidationError) as error:
        _create(version, reward_backbone, researcher, **overrides)
    assert field in error.value.message_dict
    assert RewardRun.objects.count() == 0 and Job.objects.count() == jobs


def test_run_create_needs_a_model_folder_with_a_config(version, researcher, tmp_path):
    with pytest.raises(ValidationError) as error:
        _create(version, tmp_path / "missing", researcher)
    assert "No model folder" in error.value.message_dict["base_model"][0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError) as error:
        _create(version, tmp_path / "empty", researcher)
    assert "config.json" in error.value.message_dict["base_model"][0]
    assert RewardRun.objects.count() == 0


def test_run_create_needs_a_frozen_version(db, reward_backbone, researcher):
    _, queue = verified_pairs(2, name="building")
    building = version_create(name="building", criteria={"queues": [queue.pk]})  # its build job never ran
    with pytest.raises(ValidationError) as error:
        _create(building, reward_backbone, researcher)
    assert "only frozen versions train" in error.value.message_dict["dataset_version"][0]
    assert RewardRun.objects.count() == 0


def test_run_create_stores_run_and_gpu_job(version, reward_backbone, researcher):
    run = _create(version, reward_backbone, researcher)
    assert run.dataset_hash == version.content_hash and run.status == JobStatus.QUEUED
    assert run.job.kind == "train_reward" and run.job.queue == "gpu" and run.job.params == {"run": run.pk}
    assert run.config["train"]["lr"] == 1e-3 and run.config["train"]["weight_decay"] == 0.0  # a default kept
    assert run.code_version


# --- API --------------------------------------------------------------------------------------------------


def test_api_annotators_get_403(db, annotator):
    client = token_client(annotator)
    assert client.get("/api/v1/reward-runs/").status_code == 403
    assert client.post("/api/v1/reward-runs/", {}, format="json").status_code == 403


def test_api_create_list_and_errors(api, version, reward_backbone):
    bad = api.post("/api/v1/reward-runs/", {"name": "rm", "dataset_version": version.pk, "base_model": "/nowhere",
                                            "train": {"lr": -1}}, format="json")
    assert bad.status_code == 400 and {"base_model", "train.lr"} <= set(bad.json())
    created = api.post("/api/v1/reward-runs/", {"name": "rm", "dataset_version": version.pk,
                                                "base_model": str(reward_backbone), "model": FAST_MODEL,
                                                "train": FAST_TRAIN}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["dataset_hash"] == version.content_hash and body["status"] == "queued"
    listed = api.get("/api/v1/reward-runs/").json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    assert api.get(f"/api/v1/reward-runs/{body['id']}/metrics/").json() == []
    assert api.get("/api/v1/reward-runs/defaults/").json()["train"]["lr"] == 2e-6


# --- Training through the handler ---------------------------------------------------------------------------


def test_a_run_trains_end_to_end(api, version, reward_backbone, researcher):
    run = _create(version, reward_backbone, researcher)
    result = run_job_inline(run.job)
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert result["step"] == 4 and run.status == JobStatus.SUCCEEDED
    assert (job.progress_done, job.progress_total) == (4, 4)
    assert run.dataset_hash == version.content_hash
    assert list(RewardMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3, 4]
    assert RewardMetric.objects.filter(run=run, kind="eval", step=4).exists()
    # keep_last=1: the step-2 checkpoint was pruned once step 4 was complete, and its row went with it.
    checkpoint = RewardCheckpoint.objects.get(run=run)
    assert checkpoint.step == 4 and (Path(checkpoint.path) / "reward_model.safetensors").is_file()
    assert checkpoint.metrics["train"]["total_steps"] == 4 and "loss" in checkpoint.metrics["train"]
    assert (Path(run.output_dir) / "data.parquet").is_file()

    curves = api.get(f"/api/v1/reward-runs/{run.pk}/metrics/?kind=train&after_step=2").json()
    assert [row["step"] for row in curves] == [3, 4] and {"loss", "accuracy", "lr"} <= set(curves[0]["values"])
    assert [row["step"] for row in api.get(f"/api/v1/reward-runs/{run.pk}/checkpoints/").json()] == [4]


def test_a_cancelled_run_resumes_from_its_last_checkpoint(api, client, version, reward_backbone, researcher,
                                                          monkeypatch):
    run = _create(version, reward_backbone, researcher)
    record = reward_handler.metric_record
    assert api.post(f"/api/v1/reward-runs/{run.pk}/resume/").status_code == 400  # queued: nothing to resume

    def cancel_at_step_3(**kwargs):
        if kwargs["step"] == 3:
            assert api.post(f"/api/v1/reward-runs/{run.pk}/cancel/").status_code == 200
        return record(**kwargs)

    monkeypatch.setattr(reward_handler, "metric_record", cancel_at_step_3)
    claim = job_claim(job_id=run.job_id, worker_name="test")
    with pytest.raises(JobCancelled):
        reward_handler.run_train_reward(JobContext(claim))
    job_mark_cancelled(claim=claim)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert list(RewardCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [2]
    # Stopped at step 3's progress report: nothing after it ran.
    assert list(RewardMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3]
    assert api.post(f"/api/v1/reward-runs/{run.pk}/cancel/").status_code == 400  # already stopped

    client.force_login(researcher)
    page = client.get(f"/dashboard/reward-runs/{run.pk}/").content.decode()
    assert 'id="run-resume"' in page and 'id="run-cancel"' not in page
    recorded = []

    def count(**kwargs):
        recorded.append((kwargs["kind"], kwargs["step"]))
        return record(**kwargs)

    monkeypatch.setattr(reward_handler, "metric_record", count)
    first_job = run.job_id
    assert client.post(f"/dashboard/reward-runs/{run.pk}/resume/").status_code == 302
    run.refresh_from_db()
    assert run.job_id != first_job and run.status == JobStatus.QUEUED
    assert Job.objects.get(pk=run.job_id).params == {"run": run.pk, "resume": True}
    assert 'id="run-cancel"' in client.get(f"/dashboard/reward-runs/{run.pk}/").content.decode()
    result = run_job_inline(Job.objects.get(pk=run.job_id))
    assert result["step"] == 4 and recorded == [("train", 3), ("train", 4), ("eval", 4)]  # from step 2 on
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert list(RewardMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3, 4]
    assert api.post(f"/api/v1/reward-runs/{run.pk}/resume/").status_code == 400  # succeeded


class WorkerLost(Exception):
    pass


def test_a_lost_worker_resumes_from_the_last_checkpoint(version, reward_backbone, researcher, monkeypatch):
    run = _create(version, reward_backbone, researcher)
    record = reward_handler.metric_record

    def die_at_step_3(**kwargs):
        if kwargs["step"] == 3:
            raise WorkerLost
        return record(**kwargs)

    monkeypatch.setattr(reward_handler, "metric_record", die_at_step_3)
    claim = job_claim(job_id=run.job_id, worker_name="doomed")
    with pytest.raises(WorkerLost):
        reward_handler.run_train_reward(JobContext(claim))
    assert list(RewardCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [2]
    export = Path(run.output_dir) / "data.parquet"
    written = export.stat().st_mtime_ns
    recorded = []

    def count(**kwargs):
        recorded.append((kwargs["kind"], kwargs["step"]))
        return record(**kwargs)

    monkeypatch.setattr(reward_handler, "metric_record", count)

    assert jobs_requeue_stale(stale_seconds=0) == [run.job_id]
    result = run_job_inline(Job.objects.get(pk=run.job_id))
    assert result["step"] == 4 and export.stat().st_mtime_ns == written  # the export was reused
    assert recorded == [("train", 3), ("train", 4), ("eval", 4)]  # resumed at step 2, not restarted
    assert list(RewardMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3, 4]
    assert list(RewardCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [4]
    job = Job.objects.get(pk=run.job_id)
    assert job.attempts == 2 and (job.progress_done, job.progress_total) == (4, 4)


# --- Dashboard pages --------------------------------------------------------------------------------------


def test_pages_are_for_researchers_only(client, annotator):
    client.force_login(annotator)
    assert client.get("/dashboard/reward-runs/").status_code == 403
    assert client.post("/dashboard/reward-runs/", {"name": "x"}).status_code == 403


def test_launch_form_shows_defaults_names_bad_fields_and_launches(client, researcher, version, reward_backbone):
    client.force_login(researcher)
    page = client.get("/dashboard/reward-runs/")
    assert page.status_code == 200
    form = page.context["form"]
    assert form["lr"].initial == 2e-6 and form["lora_rank"].initial == 64 and "Default: 2e-06" in form["lr"].help_text
    fields = {"name": "from-form", "dataset_version": version.pk, "base_model": str(reward_backbone),
              **{name: form[name].initial for name in ("lr", "batch_size", "grad_accum", "max_steps", "epochs",
                                                       "warmup_steps", "loss", "eval_every", "save_every", "seed",
                                                       "lora_rank", "lora_alpha")}}
    bad = client.post("/dashboard/reward-runs/", {**fields, "lr": "3"})
    assert bad.status_code == 400 and bad.context["form"].errors["lr"] and RewardRun.objects.count() == 0
    good = client.post("/dashboard/reward-runs/", fields)
    run = RewardRun.objects.get()
    assert good.status_code == 302 and good["Location"] == f"/dashboard/reward-runs/{run.pk}/"
    assert run.config["train"]["lr"] == 2e-6 and run.config["train"]["max_steps"] == 0


def test_run_page_carries_the_curves(client, researcher, version, reward_backbone):
    run = _create(version, reward_backbone, researcher)
    run_job_inline(run.job)
    client.force_login(researcher)
    page = client.get(f"/dashboard/reward-runs/{run.pk}/")
    assert page.status_code == 200
    assert [m["step"] for m in page.context["metrics"] if m["kind"] == "train"] == [1, 2, 3, 4]
    assert page.context["active"] is False
    body = page.content.decode()
    assert 'id="reward-metrics"' in body and 'data-curve="loss"' in body and "js/rewards.js" in body
    assert client.get("/dashboard/reward-runs/").content.decode().count(f'id="reward-run-{run.pk}"') == 1


# --- In real Chromium -------------------------------------------------------------------------------------


CURVE_JS = """
(key) => {
  const canvas = document.querySelector(`canvas[data-curve="${key}"]`);
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {points: chart.data.datasets.map((d) => d.data.length), painted};
}
"""


@pytest.fixture
def _runs_removed_before_flush(transactional_db):
    """The flush at the end purges frozen dataset versions first (tests/conftest.py); the runs that PROTECT them
    go before that (this teardown runs before the autouse one)."""
    yield
    RewardRun.objects.all().delete()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_run_page_draws_the_curves_in_chromium(page, live_server, demo_accounts, _runs_removed_before_flush):
    from spatiallab.accounts.roles import Role
    from spatiallab.datasets.models import DatasetVersion
    from tests.browser import log_in

    _, queue = verified_pairs(4, name="browser-rewards")
    version = build_version("browser-rewards", criteria={"queues": [queue.pk]})
    version = DatasetVersion.objects.get(pk=version.pk)
    run = RewardRun.objects.create(name="browser-run", dataset_version=version, dataset_hash=version.content_hash,
                                   base_model="/models/tiny", config=config_defaults(), status=JobStatus.SUCCEEDED)
    for step in range(1, 6):
        RewardMetric.objects.create(run=run, step=step, kind="train",
                                    values={"loss": 0.7 - step / 20, "accuracy": 0.5 + step / 20, "lr": step * 1e-4})
    RewardMetric.objects.create(run=run, step=5, kind="eval", values={"loss": 0.6, "accuracy": 0.7})

    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/reward-runs/")
    page.click("text=browser-run")
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.querySelector('canvas[data-curve]'))")
    for key, points in (("loss", [5, 1]), ("accuracy", [5, 1]), ("lr", [5])):
        drawn = page.evaluate(CURVE_JS, key)
        assert drawn["points"] == points and drawn["painted"] > 500, (key, drawn)
    assert '"lr": 0.000002' in page.locator("#config-text").inner_text()
