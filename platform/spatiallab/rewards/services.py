"""Reward runs: creating one (validated, then its training job) and recording what the job reports (metric
rows, checkpoint rows, the status that mirrors the job)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Abs

from spatiallab.datasets.models import DatasetVersion, VersionStatus
from spatiallab.generation.models import Pair
from spatiallab.generation.selectors import pairs_filtered
from spatiallab.jobs import runs
from spatiallab.jobs.models import JobStatus
from spatiallab.jobs.services import job_create
from spatiallab.rewards.defaults import CHOICES, MODEL_DEFAULTS, TRAIN_DEFAULTS
from spatiallab.rewards.models import PairScore, RewardCheckpoint, RewardEvaluation, RewardMetric, RewardRun
from spatiallab.verification.models import ItemStatus, QueueItem, VerificationQueue

# Fields the platform fills itself: the backbone is the run's base model, data and output_dir are the run's
# folder, resume is decided by the job (a requeued job resumes).
MANAGED_FIELDS = {"model": ("backbone",), "train": ("data", "output_dir", "resume")}

# Accepted ranges of the numeric hyperparameters: (min, max), inclusive; None means unbounded.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "lora_rank": (1, 1024), "lora_alpha": (0.0, 10_000.0), "lora_dropout": (0.0, 0.9), "head_hidden": (1, 4096),
    "head_dropout": (0.0, 0.9), "min_pixels": (1, 10_000_000), "max_pixels": (1, 10_000_000),
    "mc_samples": (1, 4096), "mismatch_weight": (0.0, 100.0), "lr": (0.0, 1.0), "weight_decay": (0.0, 1.0),
    "warmup_steps": (0, 1_000_000),
    "min_lr_ratio": (0.0, 1.0), "batch_size": (1, 1024), "grad_accum": (1, 1024), "max_grad_norm": (0.0, 1e6),
    "eval_every": (0, 1_000_000), "eval_batch_size": (1, 1024), "max_eval_pairs": (0, 100_000_000),
    "save_every": (0, 1_000_000), "keep_last": (1, 1000), "log_every": (1, 1_000_000), "seed": (0, 2**31 - 1),
    "max_steps": (0, 10_000_000), "max_seconds": (0.0, 1e7), "epochs": (0.0, 1000.0), "num_workers": (0, 64),
}


def config_defaults() -> dict[str, dict[str, Any]]:
    """The paper's defaults, as the launch form and the API show them (the platform-managed fields left out)."""
    return {"model": copy.deepcopy(MODEL_DEFAULTS), "train": copy.deepcopy(TRAIN_DEFAULTS)}


def code_version() -> str:
    """The checkout's commit, read from .git without running git (a deployment may have no git); else the
    package version."""
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
        elif head:
            return head
    except OSError:
        pass
    try:
        return "spatiallab " + metadata.version("spatiallab")
    except metadata.PackageNotFoundError:
        return ""


def _merged(section: str, given: dict | None) -> tuple[dict, dict]:
    """The section's values over the defaults; errors keyed by "section.field"."""
    return runs.settings_merged(config_defaults()[section], given, prefix=section, managed=MANAGED_FIELDS[section],
                                ranges=RANGES, choices=CHOICES)


@transaction.atomic
def run_create(*, name: str, dataset_version: DatasetVersion, base_model: str, model_config: dict | None = None,
               train_config: dict | None = None, created_by=None) -> RewardRun:
    """Validates everything first (a ValidationError names the field; nothing is stored), then stores the run
    and its training job (enqueued when the transaction commits)."""
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Give the run a name."]
    if dataset_version.status != VersionStatus.FROZEN:
        errors["dataset_version"] = [f"Dataset version {dataset_version.name!r} is {dataset_version.status}; "
                                     f"only frozen versions train."]
    folder = Path(base_model)
    if not folder.is_absolute():
        folder = Path(settings.MODELS_DIR) / folder  # a relative name is a folder on the models volume
    if not base_model.strip() or not folder.is_dir():
        errors["base_model"] = [f"No model folder {str(folder)!r}."]
    elif not (folder / "config.json").is_file():
        errors["base_model"] = [f"{str(folder)!r} holds no config.json (not a save_pretrained folder)."]
    model_values, model_errors = _merged("model", model_config)
    train_values, train_errors = _merged("train", train_config)
    errors |= model_errors | train_errors
    # The one rule across fields that ModelConfig checks too: the worker must never be handed a config it refuses.
    if not errors and model_values["min_pixels"] > model_values["max_pixels"]:
        errors["model.min_pixels"] = ["Must not exceed model.max_pixels."]
    if errors:
        raise ValidationError(errors)
    run = RewardRun.objects.create(
        name=name.strip(), dataset_version=dataset_version, dataset_hash=dataset_version.content_hash,
        base_model=str(folder), config={"model": model_values, "train": train_values}, code_version=code_version(),
        created_by=created_by)
    run.output_dir = str(Path(settings.MEDIA_ROOT) / "reward-runs" / str(run.pk))
    run.job = job_create(kind="train_reward", params={"run": run.pk}, created_by=created_by)
    run.save(update_fields=["output_dir", "job"])
    return run


run_cancel = runs.run_cancel
run_resume = partial(runs.run_resume, kind="train_reward")
run_set_status = partial(runs.run_set_status, RewardRun)
jobs_ended_mark_runs = runs.status_mirror(RewardRun)
metric_record = partial(runs.metric_record, RewardMetric)
checkpoint_record = partial(runs.checkpoint_record, RewardCheckpoint)


# --- Evaluations ----------------------------------------------------------------------------------------------

EVALUATION_SPLITS = ("test", "validation", "train", "")


@transaction.atomic
def evaluation_create(*, checkpoint: RewardCheckpoint, dataset_version: DatasetVersion, split: str = "test",
                      created_by=None) -> RewardEvaluation:
    """Pairwise accuracy of a checkpoint on a split of a frozen version, computed by an evaluate_reward job."""
    errors: dict[str, list[str]] = {}
    if dataset_version.status != VersionStatus.FROZEN:
        errors["dataset_version"] = [f"Dataset version {dataset_version.name!r} is {dataset_version.status}; "
                                     f"only frozen versions are evaluated on."]
    if split not in EVALUATION_SPLITS:
        errors["split"] = ["Must be test, validation, train or empty (every entry)."]
    if not Path(checkpoint.path).is_dir():
        errors["checkpoint"] = [f"The checkpoint's folder {checkpoint.path!r} is gone."]
    if errors:
        raise ValidationError(errors)
    evaluation = RewardEvaluation.objects.create(
        run=checkpoint.run, checkpoint=checkpoint, step=checkpoint.step, checkpoint_path=checkpoint.path,
        dataset_version=dataset_version, dataset_hash=dataset_version.content_hash, split=split,
        created_by=created_by)
    evaluation.job = job_create(kind="evaluate_reward", params={"evaluation": evaluation.pk}, created_by=created_by)
    evaluation.save(update_fields=["job"])
    return evaluation


def evaluation_set_status(*, evaluation_id: int, status: str) -> None:
    RewardEvaluation.objects.filter(pk=evaluation_id).update(status=status)


@transaction.atomic
def evaluation_finish(*, evaluation_id: int, report: dict, per_pair: list[dict]) -> RewardEvaluation:
    """Stores the report and, while the checkpoint row exists, every pair's scores (the gallery's verdicts)."""
    evaluation = RewardEvaluation.objects.select_for_update().get(pk=evaluation_id)
    evaluation.report = runs.json_safe(report)
    evaluation.status = JobStatus.SUCCEEDED
    evaluation.save(update_fields=["report", "status"])
    if evaluation.checkpoint_id:
        pair_scores_store(checkpoint_id=evaluation.checkpoint_id, rows=[
            (row["pair_id"], row["winner_mu"], row["winner_log_sigma"], row["loser_mu"], row["loser_log_sigma"])
            for row in per_pair])
    return evaluation


# --- Pair scores (a checkpoint's verdict on generated pairs) ---------------------------------------------------


def pair_scores_store(*, checkpoint_id: int, rows: Iterable[tuple[int, float, float, float, float]]) -> int:
    """Stores (pair id, winner mu, winner log sigma, loser mu, loser log sigma) rows; a pair already scored by the
    checkpoint keeps its row (a checkpoint's scores never change). Pairs deleted meanwhile are skipped."""
    rows = list(rows)
    existing = set(Pair.objects.filter(pk__in=[row[0] for row in rows]).values_list("pk", flat=True))
    objects = []
    for pair_id, winner_mu, winner_log_sigma, loser_mu, loser_log_sigma in rows:
        if pair_id not in existing:
            continue
        winner_sigma, loser_sigma = math.exp(winner_log_sigma), math.exp(loser_log_sigma)
        objects.append(PairScore(checkpoint_id=checkpoint_id, pair_id=pair_id, winner_mu=winner_mu,
                                 winner_sigma=winner_sigma, loser_mu=loser_mu, loser_sigma=loser_sigma,
                                 margin=winner_mu - loser_mu, spread=math.hypot(winner_sigma, loser_sigma)))
    PairScore.objects.bulk_create(objects, batch_size=1000, ignore_conflicts=True)
    return len(objects)


def score_targets(*, checkpoint: RewardCheckpoint, queue: VerificationQueue | None = None,
                  selection: dict | None = None, limit: int = 2000) -> QuerySet[Pair]:
    """The pairs a score_pairs job scores: a queue's undecided regular items, or the pairs matching gallery
    filters (newest first), at most `limit`, without those the checkpoint already scored."""
    if queue is not None:
        pairs = Pair.objects.filter(Exists(QueueItem.objects.filter(
            queue=queue, pair=OuterRef("pk"), is_gold=False, status=ItemStatus.PENDING)))
    else:
        pairs = pairs_filtered(Pair.objects.all(), **(selection or {}))
    pairs = pairs.order_by("-pk")[:limit]
    return (Pair.objects.filter(pk__in=pairs.values("pk"))
            .exclude(Exists(PairScore.objects.filter(checkpoint=checkpoint, pair=OuterRef("pk"))))
            .order_by("-pk"))


@transaction.atomic
def score_pairs_launch(*, checkpoint: RewardCheckpoint, queue: VerificationQueue | None = None,
                       order_by: str | None = None, selection: dict | None = None, limit: int = 2000,
                       created_by=None):
    """A score_pairs job for a queue (then ordered by the checkpoint's uncertainty when order_by is given) or for
    the pairs matching gallery filters."""
    if not Path(checkpoint.path).is_dir():
        raise ValidationError({"checkpoint": [f"The checkpoint's folder {checkpoint.path!r} is gone."]})
    params: dict[str, Any] = {"checkpoint": checkpoint.pk, "limit": limit}
    if queue is not None:
        params["queue"] = queue.pk
        if order_by:
            params["order_by"] = order_by
    else:
        params["selection"] = {key: value for key, value in (selection or {}).items() if value not in (None, "")}
    job = job_create(kind="score_pairs", params=params, created_by=created_by)
    if queue is not None and order_by:
        VerificationQueue.objects.filter(pk=queue.pk).update(order_job=job)
    return job


def queue_order_by_scores(*, queue_id: int, checkpoint_id: int, order_by: str) -> int:
    """Serves the queue's open regular items most informative first under the checkpoint's scores: largest sigma
    of the margin (order_by="sigma") or smallest |margin| ("margin"); unscored items after them."""
    from spatiallab.verification.services import queue_reorder

    key = "-spread" if order_by == "sigma" else "abs_margin"
    ordered = (PairScore.objects.filter(checkpoint_id=checkpoint_id, pair__queue_items__queue_id=queue_id)
               .annotate(abs_margin=Abs("margin")).order_by(key, "pair_id").values_list("pair_id", flat=True))
    return queue_reorder(queue_id=queue_id, pair_ids=list(ordered), order_by=order_by, checkpoint_id=checkpoint_id)


jobs_ended_mark_evaluations = runs.status_mirror(RewardEvaluation)
