"""Reward runs: creating one (validated, then its training job) and recording what the job reports (metric
rows, checkpoint rows, the status that mirrors the job)."""

from __future__ import annotations

import copy
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from spatiallab.datasets.models import DatasetVersion, VersionStatus
from spatiallab.jobs.services import job_create
from spatiallab.rewards.defaults import CHOICES, MODEL_DEFAULTS, TRAIN_DEFAULTS
from spatiallab.rewards.models import RewardCheckpoint, RewardMetric, RewardRun

# Fields the platform fills itself: the backbone is the run's base model, data and output_dir are the run's
# folder, resume is decided by the job (a requeued job resumes).
MANAGED_FIELDS = {"model": ("backbone",), "train": ("data", "output_dir", "resume")}

# Accepted ranges of the numeric hyperparameters: (min, max), inclusive; None means unbounded.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "lora_rank": (1, 1024), "lora_alpha": (0.0, 10_000.0), "lora_dropout": (0.0, 0.9), "head_hidden": (1, 4096),
    "head_dropout": (0.0, 0.9), "min_pixels": (1, 10_000_000), "max_pixels": (1, 10_000_000),
    "mc_samples": (1, 4096), "lr": (0.0, 1.0), "weight_decay": (0.0, 1.0), "warmup_steps": (0, 1_000_000),
    "min_lr_ratio": (0.0, 1.0), "batch_size": (1, 1024), "grad_accum": (1, 1024), "max_grad_norm": (0.0, 1e6),
    "eval_every": (0, 1_000_000), "eval_batch_size": (1, 1024), "max_eval_pairs": (0, 100_000_000),
    "save_every": (0, 1_000_000), "keep_last": (1, 1000), "log_every": (1, 1_000_000), "seed": (0, 2**31 - 1),
    "max_steps": (0, 10_000_000), "epochs": (0.0, 1000.0), "num_workers": (0, 64),
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
    values = config_defaults()[section]
    managed = MANAGED_FIELDS[section]
    errors: dict[str, list[str]] = {}
    for key, value in (given or {}).items():
        name = f"{section}.{key}"
        if key in managed:
            errors[name] = ["Set by the platform; leave it out."]
        elif key not in values:
            errors[name] = [f"Unknown setting; known: {', '.join(sorted(values))}."]
        else:
            default = values[key]
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                value = float(value) if ok else value
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            else:
                ok = isinstance(value, str)
            if not ok:
                errors[name] = [f"Must be a {type(default).__name__}."]
                continue
            low, high = RANGES.get(key, (None, None))
            if (low is not None and value < low) or (high is not None and value > high):
                errors[name] = [f"Must be between {low} and {high}."]
                continue
            choices = CHOICES.get(key)
            if choices and value not in choices:
                errors[name] = [f"Must be one of {', '.join(repr(c) for c in choices)}."]
                continue
            values[key] = value
    return values, errors


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


def run_set_status(*, run_id: int, status: str) -> None:
    RewardRun.objects.filter(pk=run_id).update(status=status)


def metric_record(*, run_id: int, step: int, kind: str, values: dict) -> RewardMetric:
    """Stored once per (run, step, kind): a resumed run reporting a step again replaces it."""
    metric, _ = RewardMetric.objects.update_or_create(run_id=run_id, step=step, kind=kind,
                                                      defaults={"values": values})
    return metric


@transaction.atomic
def checkpoint_record(*, run_id: int, step: int, path: str, metrics: dict) -> RewardCheckpoint:
    """Records a complete checkpoint and drops the rows of the ones the trainer pruned (keep_last)."""
    checkpoint, _ = RewardCheckpoint.objects.update_or_create(run_id=run_id, step=step,
                                                              defaults={"path": path, "metrics": metrics})
    gone = [row.pk for row in RewardCheckpoint.objects.filter(run_id=run_id).exclude(pk=checkpoint.pk)
            if not Path(row.path).exists()]
    RewardCheckpoint.objects.filter(pk__in=gone).delete()
    return checkpoint


def jobs_ended_mark_runs(sender, job_ids: list[int], status: str, **kwargs) -> None:
    """Receiver of jobs.services.job_ended: a run whose job failed or was cancelled says so."""
    RewardRun.objects.filter(job_id__in=job_ids).update(status=status)
