"""What every training run (a reward-model run, a GRPO run) does with its job, in one place: its status mirrors
the job, a cancel stops the job, a resume starts a new job that continues from the last complete checkpoint, and
the metric and checkpoint rows the trainer reports are stored once per step (a resumed job reports the steps
after its checkpoint again).

A run model has `status` and `job` fields; its metric model `run`, `step`, `kind`, `values`; its checkpoint
model `run`, `step`, `path`, `metrics`."""

from __future__ import annotations

import math
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models, transaction

from spatiallab.jobs.models import ACTIVE_STATUSES, JobStatus
from spatiallab.jobs.services import job_cancel, job_create


def json_safe(value):
    """NaN and infinities (an empty cell's accuracy, a diverged loss) as null: JSON, and so the database, has no
    NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def settings_merged(defaults: dict, given: dict | None, *, prefix: str, managed=(), ranges: dict | None = None,
                    choices: dict | None = None) -> tuple[dict, dict[str, list[str]]]:
    """A run's settings: `given` over `defaults` (a copy of the trainer's dataclass defaults), each value checked
    against its default's type, its (min, max) range and its choices. Returns (values, errors), the errors keyed
    "<prefix>.<field>" so a form or the API names the field; the trainer is never handed a value it refuses."""
    values = dict(defaults)
    errors: dict[str, list[str]] = {}
    for key, value in (given or {}).items():
        name = f"{prefix}.{key}"
        if key in managed:
            errors[name] = ["Set by the platform; leave it out."]
            continue
        if key not in values:
            errors[name] = [f"Unknown setting; known: {', '.join(sorted(values))}."]
            continue
        default = values[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, list):
            ok = isinstance(value, list) and bool(value) and all(isinstance(item, str) and item for item in value)
        else:
            ok = isinstance(value, str) and "\x00" not in value
        if not ok:
            what = "non-empty list of strings" if isinstance(default, list) else type(default).__name__
            errors[name] = [f"Must be a {what}."]
            continue
        low, high = (ranges or {}).get(key, (None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            errors[name] = [f"Must be between {low} and {high}."]
            continue
        allowed = (choices or {}).get(key)
        if allowed and value not in allowed:
            errors[name] = [f"Must be one of {', '.join(repr(c) for c in allowed)}."]
            continue
        values[key] = value
    return values, errors


def run_cancel(*, run: models.Model) -> models.Model:
    """Stops the run's job: at once when queued, at its next progress report when running (the run's status
    follows the job). Its complete checkpoints stay; `run_resume` continues from the last one."""
    if run.job is None or run.job.status not in ACTIVE_STATUSES:
        state = f"its job is {run.job.status}" if run.job else "it has no job"
        raise ValidationError({"status": [f"The run is not queued or running ({state}); nothing to cancel."]})
    job_cancel(job=run.job)
    run.refresh_from_db()
    return run


@transaction.atomic
def run_resume(*, run: models.Model, kind: str, created_by=None) -> models.Model:
    """A new `kind` job for a cancelled or failed run that continues from its last complete checkpoint (the same
    configuration, data and output folder)."""
    run = type(run).objects.select_for_update().get(pk=run.pk)
    if run.status not in (JobStatus.CANCELLED, JobStatus.FAILED):
        raise ValidationError({"status": [f"The run is {run.status}; only a cancelled or failed run is resumed."]})
    run.job = job_create(kind=kind, params={"run": run.pk, "resume": True}, created_by=created_by)
    run.status = JobStatus.QUEUED
    run.save(update_fields=["job", "status"])
    return run


def run_set_status(model: type[models.Model], *, run_id: int, status: str) -> None:
    model.objects.filter(pk=run_id).update(status=status)


def status_mirror(model: type[models.Model]):
    """A receiver of jobs.services.job_ended: the `model` rows whose job failed or was cancelled say so."""

    def mark(sender, job_ids: list[int], status: str, **kwargs) -> None:
        model.objects.filter(job_id__in=job_ids).update(status=status)

    mark.__name__ = f"jobs_ended_mark_{model._meta.model_name}"
    return mark


def metric_record(model: type[models.Model], *, run_id: int, step: int, kind: str, values: dict):
    """Stored once per (run, step, kind): a resumed run reporting a step again replaces it."""
    metric, _ = model.objects.update_or_create(run_id=run_id, step=step, kind=kind,
                                               defaults={"values": json_safe(values)})
    return metric


@transaction.atomic
def checkpoint_record(model: type[models.Model], *, run_id: int, step: int, path: str, metrics: dict,
                      keep: models.Q | None = None):
    """Records a complete checkpoint and drops the rows of the ones the trainer pruned (keep_last): those whose
    folder is gone, except the rows matching `keep`."""
    checkpoint, _ = model.objects.update_or_create(run_id=run_id, step=step,
                                                   defaults={"path": path, "metrics": json_safe(metrics)})
    others = model.objects.filter(run_id=run_id).exclude(pk=checkpoint.pk)
    if keep is not None:
        others = others.exclude(keep)
    model.objects.filter(pk__in=[row.pk for row in others if not Path(row.path).exists()]).delete()
    return checkpoint
