"""Flow-GRPO runs in the platform: run_create's validation, the defaults copy, the API's permissions and errors,
and real tiny runs (a random tiny Flux pipeline registered as a diffusers generator, the programmatic
left-minus-right brightness reward) through the train_grpo handler in this process: metrics, checkpoints,
evaluation samples, progress, cancel, a lost worker resuming from its checkpoint, and a checkpoint registered as
a generator whose pairs differ from the base generator's for the same seed."""

import dataclasses
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from PIL import Image

from spatiallab.generation.models import Generator, Pair
from spatiallab.grpo.defaults import CHOICES, MANAGED, PROGRAMMATIC_REWARDS
from spatiallab.grpo.models import GrpoCheckpoint, GrpoMetric, GrpoRun, GrpoSample
from spatiallab.grpo.services import config_defaults, run_create
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import JobCancelled, job_claim, job_create, job_mark_cancelled, jobs_requeue_stale
from spatiallab.prompts.models import Prompt, PromptSet
from tests.dataset_data import run_job_inline
from tests.factories import GeneratorFactory, token_client
from workers.handlers import grpo as grpo_handler
from workers.runner import JobContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# G 4, k 1, 2 denoising steps, 32 px, 3 GRPO steps; evaluations at 0, 2 and 3; checkpoints at 2 and 3.
TINY = {"group_size": 4, "top_k": 1, "prompts_per_step": 2, "sample_steps": 2, "eval_steps": 2, "height": 32,
        "width": 32, "max_sequence_length": 32, "sample_batch_size": 8, "train_batch_size": 4, "lora_rank": 4,
        "lora_alpha": 4.0, "max_steps": 3, "eval_every": 2, "eval_seeds": 2, "save_every": 2, "keep_last": 1,
        "save_eval_images": False, "device": "cpu", "lr": 1e-3}
GENERATOR_SETTINGS = {"model": "flux", "device": "cpu", "dtype": "float32", "steps": 2, "guidance": 3.5, "width": 32,
                      "height": 32, "batch_size": 4}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from ml.generation.tiny import build_tiny_flux

    folder = tmp_path_factory.mktemp("models")
    build_tiny_flux(folder / "flux")
    return folder


@pytest.fixture
def generator(db, settings, models_dir):
    settings.MODELS_DIR = models_dir
    # Registered by a name below MODELS_DIR, as on a worker's model volume.
    return GeneratorFactory(name="tiny-flux", backend="diffusers", settings=dict(GENERATOR_SETTINGS))


def prompt_set(name: str, texts: list[str]) -> PromptSet:
    prompt_set = PromptSet.objects.create(name=name)
    Prompt.objects.bulk_create([Prompt(prompt_set=prompt_set, position=i, text=text, normalized_text=text.lower())
                                for i, text in enumerate(texts)])
    return prompt_set


@pytest.fixture
def prompts(db):
    return (prompt_set("grpo-train", ["a red cube left of a blue ball", "a cat above a dog", "a cup right of a lamp"]),
            prompt_set("grpo-eval", ["a bird left of a tree", "a box below a chair"]))


def _create(generator, prompts, researcher, **overrides):
    return run_create(**{"name": "grpo", "generator": generator, "train_prompt_set": prompts[0],
                         "eval_prompt_set": prompts[1], "reward": "brightness-left-right", "config": dict(TINY),
                         "created_by": researcher, **overrides})


# --- Defaults and validation --------------------------------------------------------------------------------


def test_the_platforms_copy_of_the_defaults_matches_the_dataclass():
    from ml.grpo.config import GRPOConfig
    from ml.grpo.rewards import REWARDS

    fields = dataclasses.fields(GRPOConfig)
    expected = {f.name: getattr(GRPOConfig(), f.name) for f in fields if f.name not in MANAGED}
    assert config_defaults() == expected
    assert set(MANAGED) <= {f.name for f in fields}
    for f in fields:
        if "choices" in f.metadata:
            assert tuple(f.metadata["choices"]) == CHOICES[f.name]
    assert set(PROGRAMMATIC_REWARDS) | {"spatialscore"} == set(REWARDS)
    GRPOConfig(**config_defaults())  # the service's defaults are a config the dataclass accepts


def test_defaults_are_the_papers():
    defaults = config_defaults()
    assert (defaults["group_size"], defaults["top_k"], defaults["sample_steps"]) == (24, 6, 6)
    assert (defaults["lr"], defaults["clip_range"], defaults["beta"], defaults["lora_rank"]) == (3e-4, 1e-4, 0.01, 32)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"config": {"lr": 5.0}}, "config.lr"),
    ({"config": {"group_size": 0}}, "config.group_size"),
    ({"config": {"group_size": 4, "top_k": 6}}, "config.top_k"),
    ({"config": {"height": 40}}, "config.height"),
    ({"config": {"stats": "median"}}, "config.stats"),
    ({"config": {"lr": "fast"}}, "config.lr"),
    ({"config": {"pretrained": "/tmp/x"}}, "config.pretrained"),
    ({"config": {"output_dir": "/tmp/x"}}, "config.output_dir"),
    ({"config": {"lr_typo": 1e-3}}, "config.lr_typo"),
    ({"config": {"noise_level": 0}}, "config.noise_level"),
    ({"reward": "pixels"}, "reward"),
    ({"reward": ""}, "reward"),
    ({"name": "  "}, "name"),
])
def test_run_create_names_the_bad_field_and_stores_nothing(generator, prompts, researcher, overrides, field):
    jobs = Job.objects.count()
    with pytest.raises(ValidationError) as error:
        _create(generator, prompts, researcher, **overrides)
    assert field in error.value.message_dict
    assert GrpoRun.objects.count() == 0 and Job.objects.count() == jobs


def test_run_create_checks_the_generator_the_prompt_sets_and_the_reward_checkpoint(generator, prompts, researcher,
                                                                                     tmp_path):
    from spatiallab.rewards.models import RewardCheckpoint, RewardRun
    from spatiallab.rewards.services import config_defaults as reward_defaults
    from tests.dataset_data import build_version, verified_pairs

    renderer = GeneratorFactory(name="renderer", backend="scene-renderer", settings={})
    missing = GeneratorFactory(name="missing", backend="diffusers", settings={**GENERATOR_SETTINGS, "model": "nope"})
    with_lora = GeneratorFactory(name="lora", backend="diffusers", settings={**GENERATOR_SETTINGS, "lora": "/x"})
    for bad, text in ((renderer, "diffusers"), (missing, "model_index.json"), (with_lora, "LoRA")):
        with pytest.raises(ValidationError) as error:
            _create(bad, prompts, researcher)
        assert text in error.value.message_dict["generator"][0]
    empty = PromptSet.objects.create(name="empty")
    with pytest.raises(ValidationError) as error:
        _create(generator, (prompts[0], empty), researcher)
    assert "no prompts" in error.value.message_dict["eval_prompt_set"][0]

    _, queue = verified_pairs(2, name="grpo-reward")
    version = build_version("grpo-reward", criteria={"queues": [queue.pk]})
    reward_run = RewardRun.objects.create(name="rm", dataset_version=version, dataset_hash=version.content_hash,
                                          base_model="/models/tiny", config=reward_defaults())
    checkpoint = RewardCheckpoint.objects.create(run=reward_run, step=1, path=str(tmp_path / "gone"))
    with pytest.raises(ValidationError) as error:
        _create(generator, prompts, researcher, reward="", reward_checkpoint=checkpoint)
    assert "is gone" in error.value.message_dict["reward_checkpoint"][0]
    with pytest.raises(ValidationError) as error:
        _create(generator, prompts, researcher, reward_checkpoint=checkpoint)
    assert "not both" in error.value.message_dict["reward"][0]
    assert GrpoRun.objects.count() == 0
    (tmp_path / "gone").mkdir()
    run = _create(generator, prompts, researcher, reward="", reward_checkpoint=checkpoint)
    assert run.reward == "spatialscore" and run.reward_model == checkpoint.path


def test_run_create_stores_run_and_gpu_job(generator, prompts, researcher, models_dir):
    run = _create(generator, prompts, researcher)
    assert run.status == JobStatus.QUEUED and run.base_model == str(models_dir / "flux")
    assert run.job.kind == "train_grpo" and run.job.queue == "gpu" and run.job.params == {"run": run.pk}
    assert run.config["group_size"] == 4 and run.config["beta"] == 0.01  # a default kept
    assert run.code_version and run.output_dir.endswith(f"grpo-runs/{run.pk}")


# --- API ------------------------------------------------------------------------------------------------------


def test_api_annotators_get_403(db, annotator):
    client = token_client(annotator)
    assert client.get("/api/v1/grpo-runs/").status_code == 403
    assert client.post("/api/v1/grpo-runs/", {}, format="json").status_code == 403
    assert client.get("/api/v1/grpo-checkpoints/").status_code == 403
    assert client.post("/api/v1/grpo-checkpoints/1/register-generator/").status_code == 403


def test_api_create_list_defaults_and_errors(api, generator, prompts):
    body = {"name": "g", "generator": generator.pk, "train_prompt_set": prompts[0].pk,
            "eval_prompt_set": prompts[1].pk}
    bad = api.post("/api/v1/grpo-runs/", {**body, "reward": "pixels", "config": {"lr": -1}}, format="json")
    assert bad.status_code == 400 and {"reward", "config.lr"} <= set(bad.json())
    assert api.post("/api/v1/grpo-runs/", {**body, "generator": 10**9}, format="json").status_code == 400
    created = api.post("/api/v1/grpo-runs/", {**body, "reward": "brightness", "config": TINY}, format="json")
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert created.json()["status"] == "queued" and created.json()["reward"] == "brightness"
    assert [row["id"] for row in api.get("/api/v1/grpo-runs/").json()["results"]] == [run_id]
    assert api.get(f"/api/v1/grpo-runs/{run_id}/metrics/").json() == []
    assert api.get(f"/api/v1/grpo-runs/{run_id}/metrics/?kind=nope").status_code == 400
    assert api.get(f"/api/v1/grpo-runs/{run_id}/samples/?step=x").status_code == 400
    defaults = api.get("/api/v1/grpo-runs/defaults/").json()
    assert defaults["group_size"] == 24 and defaults["lr"] == 3e-4 and "pretrained" not in defaults


# --- Training through the handler -----------------------------------------------------------------------------


def test_a_run_trains_end_to_end_and_its_checkpoint_becomes_a_generator(api, client, generator, prompts,
                                                                          researcher):
    from tests.generation_data import perturbed_prompt_set

    run = _create(generator, prompts, researcher)
    result = run_job_inline(run.job)
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert result["step"] == 3 and run.status == JobStatus.SUCCEEDED
    assert (job.progress_done, job.progress_total) == (3, 3)
    train = GrpoMetric.objects.filter(run=run, kind="train").order_by("step")
    assert [m.step for m in train] == [1, 2, 3]
    assert {"reward_mean", "reward_std", "kl", "clip_fraction", "nfe_sampling_per_prompt",
            "nfe_train_per_prompt"} <= set(train[0].values)
    assert train[0].values["nfe_sampling_per_prompt"] == 4 * 2  # G x sample_steps
    assert list(GrpoMetric.objects.filter(run=run, kind="eval").values_list("step", flat=True)) == [0, 2, 3]
    # keep_last=1: the step-2 checkpoint was pruned once step 3 was complete, and its row went with it.
    checkpoint = GrpoCheckpoint.objects.get(run=run)
    assert checkpoint.step == 3 and (Path(checkpoint.path) / "pytorch_lora_weights.safetensors").is_file()
    assert checkpoint.metrics["train"]["total_steps"] == 3 and "reward_mean" in checkpoint.metrics["train"]
    assert "reward_mean" in checkpoint.metrics["eval"]
    # 2 eval prompts x 2 seeds at steps 0, 2 and 3, the same seeds each time, stored through the storage API.
    assert GrpoSample.objects.filter(run=run).count() == 12
    base = {(s.prompt_index, s.seed): s for s in GrpoSample.objects.filter(run=run, step=0)}
    last = {(s.prompt_index, s.seed): s for s in GrpoSample.objects.filter(run=run, step=3)}
    assert set(base) == set(last) and len(base) == 4
    sample = last[(0, 1_000_000)]
    assert sample.image == f"grpo-runs/{run.pk}/eval/step-00000003/0.png" and sample.prompt == "a bird left of a tree"
    with default_storage.open(sample.image, "rb") as handle:
        assert Image.open(handle).size == (32, 32)
    eval_rewards = GrpoMetric.objects.get(run=run, kind="eval", step=3).values["rewards"]
    assert [s.reward for s in sorted(last.values(), key=lambda s: (s.prompt_index, s.seed))] == eval_rewards

    assert [row["step"] for row in api.get(f"/api/v1/grpo-runs/{run.pk}/metrics/?kind=train&after_step=1")
            .json()] == [2, 3]
    assert len(api.get(f"/api/v1/grpo-runs/{run.pk}/samples/?step=0").json()) == 4
    assert [row["step"] for row in api.get(f"/api/v1/grpo-runs/{run.pk}/checkpoints/").json()] == [3]

    # The run page: the curves' rows and the gallery (base beside step 3 by default, step 2 when chosen).
    client.force_login(researcher)
    page = client.get(f"/dashboard/grpo-runs/{run.pk}/")
    assert page.status_code == 200 and page.context["gallery_step"] == 3 and page.context["gallery_steps"] == [2, 3]
    assert [m["step"] for m in page.context["metrics"] if m["kind"] == "train"] == [1, 2, 3]
    rows = page.context["gallery_rows"]
    assert len(rows) == 4 and all(row["base"].step == 0 and row["current"].step == 3 for row in rows)
    html = page.content.decode()
    assert 'id="grpo-metrics"' in html and 'data-curve="reward"' in html and "js/grpo.js" in html
    assert html.count('class="register-generator"') == 1
    assert client.get(f"/dashboard/grpo-runs/{run.pk}/?step=2").context["gallery_rows"][0]["current"].step == 2
    image = client.get(f"/dashboard/grpo-runs/samples/{sample.pk}/image/")
    assert image.status_code == 200 and b"".join(image.streaming_content).startswith(b"\x89PNG")

    # Register the checkpoint as a generator (twice: the same one), then generate pairs with both generators.
    registered = api.post(f"/api/v1/grpo-checkpoints/{checkpoint.pk}/register-generator/")
    assert registered.status_code == 201, registered.json()
    new = Generator.objects.get(pk=registered.json()["generator"])
    assert new.name == "grpo step 3" and new.backend == "diffusers"
    assert new.settings["model"] == "flux" and new.settings["lora"].startswith(run.output_dir)
    again = api.post(f"/api/v1/grpo-checkpoints/{checkpoint.pk}/register-generator/")
    assert again.status_code == 200 and again.json()["generator"] == new.pk and Generator.objects.count() == 2
    assert f'href="/dashboard/generators/{new.pk}/"' in client.get(f"/dashboard/grpo-runs/{run.pk}/").content.decode()

    perturbed = perturbed_prompt_set(count=2, seed=3)
    pairs_job = job_create(kind="generate_pairs", params={"prompt_set": perturbed.pk, "seeds": 1,
                                                          "generators": [generator.pk, new.pk]},
                           created_by=researcher)
    run_job_inline(pairs_job)
    compared = 0
    for pair in Pair.objects.filter(generator=generator):
        twin = Pair.objects.get(generator=new, perturbed=pair.perturbed, seed=pair.seed)
        with default_storage.open(pair.winner_image, "rb") as a, default_storage.open(twin.winner_image, "rb") as b:
            assert Image.open(a).tobytes() != Image.open(b).tobytes()  # the LoRA changes the image
        compared += 1
    assert compared >= 1


def test_a_cancelled_run_stops_and_resumes_from_its_checkpoint(api, generator, prompts, researcher, monkeypatch):
    run = _create(generator, prompts, researcher)
    record = grpo_handler.metric_record

    def cancel_at_step_3(**kwargs):
        if kwargs["step"] == 3 and kwargs["kind"] == "train":
            assert api.post(f"/api/v1/grpo-runs/{run.pk}/cancel/").status_code == 200
        return record(**kwargs)

    monkeypatch.setattr(grpo_handler, "metric_record", cancel_at_step_3)
    claim = job_claim(job_id=run.job_id, worker_name="test")
    with pytest.raises(JobCancelled):
        grpo_handler.run_train_grpo(JobContext(claim))
    job_mark_cancelled(claim=claim)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert list(GrpoCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [2]
    assert list(GrpoMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3]
    assert api.post(f"/api/v1/grpo-runs/{run.pk}/cancel/").status_code == 400

    monkeypatch.setattr(grpo_handler, "metric_record", record)
    assert api.post(f"/api/v1/grpo-runs/{run.pk}/resume/").status_code == 202
    run.refresh_from_db()
    assert Job.objects.get(pk=run.job_id).params == {"run": run.pk, "resume": True}
    assert run_job_inline(Job.objects.get(pk=run.job_id))["step"] == 3
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert list(GrpoCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [3]


class WorkerLost(Exception):
    pass


def test_a_lost_worker_resumes_from_the_last_checkpoint(generator, prompts, researcher, monkeypatch):
    run = _create(generator, prompts, researcher)
    record = grpo_handler.metric_record

    def die_at_step_3(**kwargs):
        if kwargs["step"] == 3:
            raise WorkerLost
        return record(**kwargs)

    monkeypatch.setattr(grpo_handler, "metric_record", die_at_step_3)
    claim = job_claim(job_id=run.job_id, worker_name="doomed")
    with pytest.raises(WorkerLost):
        grpo_handler.run_train_grpo(JobContext(claim))
    assert list(GrpoCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [2]
    prompts_file = Path(run.output_dir) / "train.jsonl"
    written = prompts_file.stat().st_mtime_ns
    samples_before = GrpoSample.objects.filter(run=run).count()
    recorded = []

    def count(**kwargs):
        recorded.append((kwargs["kind"], kwargs["step"]))
        return record(**kwargs)

    monkeypatch.setattr(grpo_handler, "metric_record", count)
    assert jobs_requeue_stale(stale_seconds=0) == [run.job_id]
    result = run_job_inline(Job.objects.get(pk=run.job_id))
    assert result["step"] == 3 and prompts_file.stat().st_mtime_ns == written  # the prompt file was reused
    assert recorded == [("train", 3), ("eval", 3)]  # resumed at step 2, not restarted
    assert list(GrpoMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3]
    assert list(GrpoCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [3]
    # Steps 0 and 2 were stored before the loss (8 images); step 3 adds 4; nothing is duplicated.
    assert samples_before == 8 and GrpoSample.objects.filter(run=run).count() == 12
    names = list(GrpoSample.objects.filter(run=run).values_list("image", flat=True))
    assert len(set(names)) == 12 and all(default_storage.exists(name) for name in names)
    job = Job.objects.get(pk=run.job_id)
    assert job.attempts == 2 and (job.progress_done, job.progress_total) == (3, 3)


# --- Dashboard pages ------------------------------------------------------------------------------------------


def test_pages_are_for_researchers_only(client, annotator):
    client.force_login(annotator)
    assert client.get("/dashboard/grpo-runs/").status_code == 403
    assert client.post("/dashboard/grpo-runs/", {"name": "x"}).status_code == 403
    assert client.post("/dashboard/grpo-runs/checkpoints/1/register/").status_code == 403


def test_launch_form_shows_defaults_names_bad_fields_and_launches(client, researcher, generator, prompts):
    client.force_login(researcher)
    page = client.get("/dashboard/grpo-runs/")
    assert page.status_code == 200
    form = page.context["form"]
    assert (form["group_size"].initial, form["top_k"].initial, form["sample_steps"].initial) == (24, 6, 6)
    assert (form["lr"].initial, form["clip_range"].initial, form["beta"].initial) == (3e-4, 1e-4, 0.01)
    assert form["lora_rank"].initial == 32 and "Default: 0.0003" in form["lr"].help_text
    fields = {"name": "from-form", "generator": generator.pk, "reward": "brightness-left-right",
              "train_prompt_set": prompts[0].pk, "eval_prompt_set": prompts[1].pk,
              **{field.name: field.initial for field in form.setting_fields()}}
    bad = client.post("/dashboard/grpo-runs/", {**fields, "top_k": 30})
    assert bad.status_code == 400 and bad.context["form"].errors["top_k"] and GrpoRun.objects.count() == 0
    no_reward = client.post("/dashboard/grpo-runs/", {**fields, "reward": ""})
    assert no_reward.status_code == 400 and no_reward.context["form"].errors["reward"]
    good = client.post("/dashboard/grpo-runs/", fields)
    run = GrpoRun.objects.get()
    assert good.status_code == 302 and good["Location"] == f"/dashboard/grpo-runs/{run.pk}/"
    assert run.config["group_size"] == 24 and run.config["lr"] == 3e-4
    listed = client.get("/dashboard/grpo-runs/").content.decode()
    assert listed.count(f'id="grpo-run-{run.pk}"') == 1 and 'data-nav="grpo-runs"' in listed
