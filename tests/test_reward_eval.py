"""Reward checkpoints at work: evaluation jobs (Table 1 accuracies with intervals, every pair's scores kept),
scoring generated pairs, ordering a verification queue by the model's uncertainty, the model's verdict in the
pair gallery, the comparison page, and training as several torchrun processes."""

import math
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from spatiallab.datasets.services import version_create
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import job_create
from spatiallab.rewards.models import PairScore, RewardCheckpoint, RewardEvaluation, RewardMetric
from spatiallab.rewards.services import evaluation_create, pair_scores_store, run_create, score_pairs_launch
from spatiallab.verification.models import QueueItem
from spatiallab.verification.services import item_claim, queue_reorder, verdict_submit
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from tests.factories import UserFactory, token_client
from tests.verification_data import make_pairs, make_queue

PX = 112
FAST_MODEL = {"lora_rank": 4, "lora_alpha": 8.0, "min_pixels": PX * PX, "max_pixels": PX * PX}
FAST_TRAIN = {"lr": 1e-3, "warmup_steps": 1, "batch_size": 2, "max_steps": 4, "log_every": 1, "save_every": 4,
              "keep_last": 1, "eval_every": 0, "eval_split": "", "bf16": False, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def version(db):
    _, queue = verified_pairs(6, name="reward-eval")
    return build_version("reward-eval-v1", criteria={"queues": [queue.pk]},
                         ratios={"train": 1.0, "validation": 0.0, "test": 0.0})


@pytest.fixture
def checkpoint(version, reward_backbone, researcher) -> RewardCheckpoint:
    run = run_create(name="rm", dataset_version=version, base_model=str(reward_backbone),
                     model_config=dict(FAST_MODEL),
                     train_config=dict(FAST_TRAIN), created_by=researcher)
    run_job_inline(run.job)
    return RewardCheckpoint.objects.get(run=run)


def _independent_scores(checkpoint, pairs):
    """mu and log sigma of each pair's two images under its perfect prompt, computed here from the image files."""
    from django.core.files.storage import default_storage
    from PIL import Image

    from ml.reward.model import SpatialScore

    model = SpatialScore.from_checkpoint(checkpoint.path)
    prompts, images = [], []
    for pair in pairs:
        for name in (pair.winner_image, pair.loser_image):
            with default_storage.open(name, "rb") as handle:
                images.append(Image.open(handle).convert("RGB"))
            prompts.append(pair.prompt.text)
    out = model.predict(prompts, images)
    return {pair.pk: (out.mu[2 * i].item(), out.log_sigma[2 * i].item(), out.mu[2 * i + 1].item(),
                      out.log_sigma[2 * i + 1].item()) for i, pair in enumerate(pairs)}


# --- Evaluation -----------------------------------------------------------------------------------------------


def test_evaluation_create_names_the_bad_field_and_stores_nothing(db, checkpoint, version, researcher):
    _, queue = verified_pairs(2, name="still-building")
    building = version_create(name="building", criteria={"queues": [queue.pk]})
    jobs = Job.objects.count()
    for kwargs, field in (({"dataset_version": building}, "dataset_version"),
                          ({"dataset_version": version, "split": "holdout"}, "split")):
        with pytest.raises(ValidationError) as error:
            evaluation_create(checkpoint=checkpoint, created_by=researcher, **kwargs)
        assert field in error.value.message_dict
    gone = RewardCheckpoint.objects.create(run=checkpoint.run, step=99, path="/nonexistent/step-99")
    with pytest.raises(ValidationError) as error:
        evaluation_create(checkpoint=gone, dataset_version=version)
    assert "checkpoint" in error.value.message_dict
    assert RewardEvaluation.objects.count() == 0 and Job.objects.count() == jobs


def test_an_evaluation_reports_table_1_and_keeps_every_pairs_scores(checkpoint, version, researcher):
    from ml.reward.evaluate import evaluate_checkpoint

    evaluation = evaluation_create(checkpoint=checkpoint, dataset_version=version, split="train",
                                   created_by=researcher)
    assert Job.objects.get(pk=evaluation.job_id).kind == "evaluate_reward"
    result = run_job_inline(evaluation.job)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.SUCCEEDED and evaluation.step == 4
    report = evaluation.report
    assert result["pairs"] == report["pairs"] == version.entry_count == 6
    job = Job.objects.get(pk=evaluation.job_id)
    assert (job.progress_done, job.progress_total) == (6, 6)

    # The same figures as the ml evaluation CLI computes from the export file on its own.
    parquet = next((Path(evaluation.checkpoint_path).parents[2].parent / "reward-data").glob("*.parquet"))
    independent = evaluate_checkpoint(checkpoint.path, parquet, split="train")
    for cell in ("overall", "1 edit", "2-3 edits"):
        assert report[cell]["n"] == independent[cell]["n"]
        assert report[cell]["correct"] == independent[cell]["correct"]
        if report[cell]["n"]:
            assert report[cell]["ci95"] == pytest.approx(independent[cell]["ci95"])
    assert report["by_relation"].keys() == independent["by_relation"].keys()
    assert report["mean_margin"] == pytest.approx(independent["mean_margin"], abs=1e-5)

    # Every pair's scores are stored, equal to the model's scores of the image files themselves.
    scores = {row.pair_id: row for row in PairScore.objects.filter(checkpoint=checkpoint)}
    pairs = [entry.pair for entry in version.entries.select_related("pair__prompt")]
    assert set(scores) == {pair.pk for pair in pairs}
    for pair_id, (w_mu, w_ls, l_mu, l_ls) in _independent_scores(checkpoint, pairs).items():
        row = scores[pair_id]
        assert row.winner_mu == pytest.approx(w_mu, abs=1e-4) and row.loser_mu == pytest.approx(l_mu, abs=1e-4)
        assert row.winner_sigma == pytest.approx(math.exp(w_ls), rel=1e-4)
        assert row.margin == pytest.approx(w_mu - l_mu, abs=2e-4)
        assert row.spread == pytest.approx(math.hypot(math.exp(w_ls), math.exp(l_ls)), rel=1e-4)
    correct = sum(1.0 if row.margin > 0 else 0.5 if row.margin == 0 else 0.0 for row in scores.values())
    assert report["overall"]["correct"] == correct


def test_a_failed_evaluation_job_marks_the_evaluation_failed(checkpoint, version):
    from spatiallab.jobs.services import job_claim, job_fail

    evaluation = evaluation_create(checkpoint=checkpoint, dataset_version=version)
    claim = job_claim(job_id=evaluation.job_id, worker_name="test")
    job_fail(claim=claim, error="boom")
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED


def test_api_evaluations_and_checkpoints(checkpoint, version, annotator, api):
    assert token_client(annotator).get("/api/v1/reward-evaluations/").status_code == 403
    assert token_client(annotator).get("/api/v1/reward-checkpoints/").status_code == 403
    listed = api.get(f"/api/v1/reward-checkpoints/?run={checkpoint.run_id}").json()
    assert [row["id"] for row in listed["results"]] == [checkpoint.pk] and listed["results"][0]["step"] == 4

    bad = api.post("/api/v1/reward-evaluations/", {"checkpoint": checkpoint.pk, "dataset_version": version.pk,
                                                   "split": "holdout"}, format="json")
    assert bad.status_code == 400 and "split" in bad.json()
    created = api.post("/api/v1/reward-evaluations/", {"checkpoint": checkpoint.pk, "dataset_version": version.pk,
                                                       "split": "train"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "queued" and body["step"] == 4 and body["dataset_hash"] == version.content_hash
    run_job_inline(Job.objects.get(pk=body["job"]))
    detail = api.get(f"/api/v1/reward-evaluations/{body['id']}/").json()
    assert detail["status"] == "succeeded" and detail["report"]["pairs"] == 6
    assert [row["id"] for row in api.get(f"/api/v1/reward-evaluations/?run={checkpoint.run_id}").json()["results"]] \
        == [body["id"]]

    scores = api.get(f"/api/v1/reward-checkpoints/{checkpoint.pk}/pair-scores/").json()
    assert scores["count"] == 6
    one = scores["results"][0]
    assert one["margin"] == pytest.approx(one["winner_mu"] - one["loser_mu"], abs=1e-6)
    assert 0 <= one["p_winner"] <= 1
    only = api.get(f"/api/v1/reward-checkpoints/{checkpoint.pk}/pair-scores/?pair={one['pair']}").json()
    assert [row["pair"] for row in only["results"]] == [one["pair"]]
    assert api.get(f"/api/v1/reward-checkpoints/{checkpoint.pk}/pair-scores/?pair=x").status_code == 400


# --- Scoring pairs; ordering a queue by the model's uncertainty -------------------------------------------------


def test_queue_reorder_serves_the_given_order_first_and_leaves_gold_alone(db):
    pairs = make_pairs(8, name="reorder")
    queue = make_queue(pairs, name="reorder", overlap=1, gold_share=0.0)
    gold = QueueItem.objects.filter(queue=queue).first()
    QueueItem.objects.filter(pk=gold.pk).update(is_gold=True, gold_verified=True)
    gold_rank = QueueItem.objects.get(pk=gold.pk).rank
    regular = list(QueueItem.objects.filter(queue=queue, is_gold=False).order_by("rank"))
    wanted = [regular[5].pair_id, regular[2].pair_id, regular[6].pair_id]
    ranked = queue_reorder(queue_id=queue.pk, pair_ids=wanted, order_by="margin", checkpoint_id=None)
    assert ranked == 7
    served = list(QueueItem.objects.filter(queue=queue, is_gold=False).order_by("rank").values_list("pair_id",
                                                                                                     flat=True))
    rest = [item.pair_id for item in regular if item.pair_id not in wanted]
    assert served == wanted + rest  # the rest keep their old relative order
    assert QueueItem.objects.get(pk=gold.pk).rank == gold_rank
    queue.refresh_from_db()
    assert queue.order_by == "margin"


def _served_order(queue) -> list[int]:
    """The pair ids one new annotator is served, answering each."""
    user = UserFactory(role="annotator")
    order = []
    while (lease := item_claim(queue=queue, user=user)) is not None:
        order.append(lease.pair_id)
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice="left")
    return order


@pytest.mark.parametrize("order_by", ["sigma", "margin"])
def test_a_queue_is_served_most_informative_first(checkpoint, researcher, order_by):
    pairs = make_pairs(6, name=f"order-{order_by}")
    queue = make_queue(pairs, name=f"order-{order_by}", overlap=2)
    job = score_pairs_launch(checkpoint=checkpoint, queue=queue, order_by=order_by, created_by=researcher)
    queue.refresh_from_db()
    assert queue.order_job_id == job.pk
    result = run_job_inline(job)
    assert result["scored"] == 6 and result["ordered"] == 6
    scores = {row.pair_id: row for row in PairScore.objects.filter(checkpoint=checkpoint, pair__in=pairs)}
    assert len(scores) == 6
    key = (lambda pid: -scores[pid].spread) if order_by == "sigma" else (lambda pid: abs(scores[pid].margin))
    expected = sorted(scores, key=lambda pid: (key(pid), pid))
    queue.refresh_from_db()
    assert queue.order_by == order_by and queue.order_checkpoint_id == checkpoint.pk
    assert _served_order(queue) == expected


def test_score_pairs_for_gallery_filters_skips_pairs_already_scored(checkpoint, researcher):
    pairs = make_pairs(5, name="gallery-scoring")
    other = make_pairs(2, name="not-selected")
    job = score_pairs_launch(checkpoint=checkpoint, selection={"generator": pairs[0].generator_id}, limit=3,
                             created_by=researcher)
    assert run_job_inline(job)["scored"] == 3
    newest = sorted((pair.pk for pair in pairs), reverse=True)[:3]
    assert set(PairScore.objects.filter(checkpoint=checkpoint).values_list("pair_id", flat=True)) >= set(newest)
    assert not PairScore.objects.filter(checkpoint=checkpoint, pair__in=other).exists()
    again = score_pairs_launch(checkpoint=checkpoint, selection={"generator": pairs[0].generator_id}, limit=5)
    assert run_job_inline(again)["scored"] == 2  # only the two not scored yet


@pytest.mark.parametrize(("params", "field"), [
    ({}, "queue"),
    ({"selection": {"generator": 1}, "order_by": "sigma"}, "order_by"),
    ({"selection": {"colour": 1}}, "selection"),
    ({"selection": {"generator": "x"}}, "selection"),
    ({"selection": {"ground_truth": "yes"}}, "selection"),
    ({"selection": {}, "limit": 0}, "limit"),
])
def test_score_pairs_params_are_checked(checkpoint, params, field):
    with pytest.raises(ValidationError) as error:
        job_create(kind="score_pairs", params={"checkpoint": checkpoint.pk, **params})
    assert field in str(error.value)


def test_api_score_pairs(checkpoint, api, annotator):
    pairs = make_pairs(3, name="api-scoring")
    queue = make_queue(pairs, name="api-scoring")
    url = f"/api/v1/reward-checkpoints/{checkpoint.pk}/score-pairs/"
    assert token_client(annotator).post(url, {"queue": queue.pk}, format="json").status_code == 403
    assert api.post(url, {}, format="json").status_code == 400
    assert "order_by" in api.post(url, {"selection": {}, "order_by": "sigma"}, format="json").json()
    response = api.post(url, {"queue": queue.pk, "order_by": "margin"}, format="json")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"])
    assert job.kind == "score_pairs" and job.params["queue"] == queue.pk and job.params["order_by"] == "margin"


# --- Pages ------------------------------------------------------------------------------------------------------


def test_gallery_shows_the_models_verdict_next_to_the_humans(client, researcher, checkpoint):
    pairs, queue = verified_pairs(4, name="verdicts")
    liked, disliked = pairs[0], pairs[1]
    pair_scores_store(checkpoint_id=checkpoint.pk, rows=[(liked.pk, 1.0, 0.0, -1.0, 0.0),
                                                         (disliked.pk, -0.5, -1.0, 0.5, -1.0)])
    client.force_login(researcher)
    url = reverse("pair-gallery")
    page = client.get(url, {"generator": liked.generator_id, "checkpoint": checkpoint.pk}).content.decode()
    assert 'data-agrees="true"' in page and 'data-agrees="false"' in page and 'data-agrees="none"' in page
    assert "prefers the loser" in page and f'href="{reverse("queue-detail", args=[queue.pk])}"' in page
    assert 'data-item-status="verified"' in page
    disagrees = client.get(url, {"generator": liked.generator_id, "checkpoint": checkpoint.pk,
                                 "verdict": "disagrees"}).content.decode()
    assert f'id="pair-{disliked.pk}"' in disagrees and f'id="pair-{liked.pk}"' not in disagrees
    unscored = client.get(url, {"generator": liked.generator_id, "checkpoint": checkpoint.pk,
                                "verdict": "unscored"}).content.decode()
    assert f'id="pair-{liked.pk}"' not in unscored and f'id="pair-{pairs[2].pk}"' in unscored
    # A verdict filter needs a model.
    assert client.get(url, {"verdict": "agrees"}).status_code == 400
    detail = client.get(reverse("pair-detail", args=[disliked.pk])).content.decode()
    assert 'id="model-scores"' in detail and f'data-checkpoint="{checkpoint.pk}"' in detail


def test_gallery_score_button_launches_a_job_for_the_filtered_pairs(client, researcher, checkpoint):
    pairs = make_pairs(2, name="score-button")
    client.force_login(researcher)
    response = client.post(reverse("reward-score-pairs"), {
        "checkpoint": checkpoint.pk, "limit": 50, "selection": f"generator={pairs[0].generator_id}&n_edits=1"})
    job = Job.objects.filter(kind="score_pairs").latest("pk")
    assert response.status_code == 302 and response["Location"] == reverse("job-detail", args=[job.pk])
    assert job.params == {"checkpoint": checkpoint.pk, "limit": 50,
                          "selection": {"generator": pairs[0].generator_id, "n_edits": "1"}}


def test_queue_page_orders_by_a_checkpoint(client, researcher, checkpoint):
    pairs = make_pairs(2, name="queue-page-order")
    queue = make_queue(pairs, name="queue-page-order")
    client.force_login(researcher)
    page = client.get(reverse("queue-detail", args=[queue.pk])).content.decode()
    assert 'id="queue-order-form"' in page and 'data-order="random"' in page
    response = client.post(reverse("reward-queue-order", args=[queue.pk]),
                           {"checkpoint": checkpoint.pk, "order_by": "sigma"})
    assert response.status_code == 302
    queue.refresh_from_db()
    assert Job.objects.get(pk=queue.order_job_id).params == {"checkpoint": checkpoint.pk, "limit": 2000,
                                                             "queue": queue.pk, "order_by": "sigma"}
    run_job_inline(Job.objects.get(pk=queue.order_job_id))
    page = client.get(reverse("queue-detail", args=[queue.pk])).content.decode()
    assert 'data-order="sigma"' in page and "step 4" in page


def test_run_page_evaluates_and_the_comparison_page_shows_both(client, researcher, checkpoint, version, annotator):
    client.force_login(annotator)
    assert client.get(reverse("reward-evaluation-compare")).status_code == 403
    client.force_login(researcher)
    url = reverse("reward-run-evaluate", args=[checkpoint.run_id])
    bad = client.post(url, {"checkpoint": checkpoint.pk, "dataset_version": version.pk, "split": "holdout"})
    assert bad.status_code == 400 and "holdout" in bad.content.decode()
    for split in ("train", ""):
        assert client.post(url, {"checkpoint": checkpoint.pk, "dataset_version": version.pk,
                                 "split": split}).status_code == 302
    evaluations = list(RewardEvaluation.objects.order_by("pk"))
    assert [e.split for e in evaluations] == ["train", ""]
    page = client.get(reverse("reward-run-detail", args=[checkpoint.run_id])).content.decode()
    assert 'hx-trigger="every 2s"' in page  # polls while they compute
    for evaluation in evaluations:
        run_job_inline(evaluation.job)
    page = client.get(reverse("reward-run-detail", args=[checkpoint.run_id])).content.decode()
    assert 'hx-trigger="every 2s"' not in page and page.count('name="ids"') == 2
    compare = client.get(reverse("reward-evaluation-compare"), {"ids": [e.pk for e in evaluations]})
    assert len(compare.context["series"]) == 2 and compare.context["groups"][0] == "overall"
    overall = RewardEvaluation.objects.get(pk=evaluations[0].pk).report["overall"]
    row = compare.context["rows"][0]
    assert row["values"][0] == {"accuracy": overall["accuracy"], "low": overall["ci95"][0],
                                "high": overall["ci95"][1], "n": 6}
    assert 'id="comparison-series"' in compare.content.decode()


# --- Several training processes ---------------------------------------------------------------------------------


def test_to_arguments_round_trips_the_configs():
    import argparse

    from ml.reward.config import ModelConfig, TrainConfig, add_arguments, from_arguments, to_arguments

    model = ModelConfig(backbone="/m", lora_rank=3, lora_targets=["q_proj", "v_proj"], dtype="float32")
    train = TrainConfig(data="/d.parquet", output_dir="/o", eval_split="", lr=1.5e-4, bf16=False, resume=True)
    parser = argparse.ArgumentParser()
    add_arguments(parser, ModelConfig)
    add_arguments(parser, TrainConfig)
    args = parser.parse_args(to_arguments(model) + to_arguments(train))
    assert from_arguments(ModelConfig, args) == model and from_arguments(TrainConfig, args) == train


def test_a_run_trains_as_two_torchrun_processes(version, reward_backbone, researcher):
    run = run_create(name="ddp", dataset_version=version, base_model=str(reward_backbone),
                     model_config=dict(FAST_MODEL),
                     train_config={**FAST_TRAIN, "save_every": 2}, created_by=researcher)
    with override_settings(REWARD_TRAIN_PROCESSES=2):
        result = run_job_inline(run.job)
    run.refresh_from_db()
    assert result["world_size"] == 2 and result["step"] == 4 and run.status == JobStatus.SUCCEEDED
    assert list(RewardMetric.objects.filter(run=run, kind="train").values_list("step", flat=True)) == [1, 2, 3, 4]
    assert list(RewardCheckpoint.objects.filter(run=run).values_list("step", flat=True)) == [4]
    assert (Path(run.output_dir) / "train.log").exists()
    job = Job.objects.get(pk=run.job_id)
    assert (job.progress_done, job.progress_total) == (4, 4)
