"""Job lifecycle. Every state change is one conditional UPDATE (compare-and-set on the worker token or the
attempt count), so the rules hold on SQLite and PostgreSQL alike without relying on row locks:

- a job runs in at most one worker at a time (claim only when no live worker holds it);
- a redelivered or requeued message resumes from the stored checkpoint;
- attempts are capped, so a job that kills its worker cannot loop forever;
- cancellation is cooperative: a running job stops at its next progress report.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from spatiallab.jobs.kinds import JOB_KINDS, QUEUE_TASKS
from spatiallab.jobs.models import TERMINAL_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)

# Sent with `job_ids` (a list) and `status` after jobs ended without success (failed or cancelled), whichever
# path ended them: the handler raised or stopped, the job was cancelled while queued, ran out of attempts or
# could not be enqueued. What a job was making (a dataset version, an export) is marked failed by a receiver,
# so nothing waits forever on a job that will never run.
job_ended = Signal()


def _ended(job_ids: list[int], status: str) -> None:
    if job_ids:
        job_ended.send(sender=Job, job_ids=job_ids, status=status)


class JobCancelled(Exception):
    """Raised in the worker when the job was cancelled; the handler stops."""


class JobLost(Exception):
    """Raised in the worker when another worker now owns the job (this one was taken for dead)."""


def _enqueue(job: Job) -> None:
    task = QUEUE_TASKS[job.queue]
    try:
        current_app.send_task(task, args=[job.pk], queue=job.queue)
    except Exception as exc:
        # Never leave a job "queued" with no message behind it: it would wait forever.
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED, error=f"Could not enqueue the job: {exc!r}", finished_at=timezone.now()
        ):
            _ended([job.pk], JobStatus.FAILED)
        raise
    logger.info("enqueued job %s on %s", job.pk, job.queue)


def job_create(*, kind: str, params: dict[str, Any] | None = None, created_by=None) -> Job:
    """Validates `params` for `kind`, stores the job and enqueues it once the transaction commits."""
    try:
        job_kind = JOB_KINDS[kind]
    except KeyError:
        raise ValidationError({"kind": f"Unknown job kind {kind!r}; known: {', '.join(sorted(JOB_KINDS))}."}) from None
    serializer = job_kind.params(data=params or {})
    # A misspelt parameter would otherwise be dropped silently and its default used instead.
    unknown = sorted(set(params or {}) - set(serializer.fields))
    if unknown:
        raise ValidationError({"params": [f"{name}: unknown parameter." for name in unknown]})
    if not serializer.is_valid():
        raise ValidationError({"params": [f"{field}: {'; '.join(map(str, errors))}"
                                          for field, errors in serializer.errors.items()]})
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            queue=job_kind.queue,
            params=dict(serializer.validated_data),
            created_by=created_by,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
        )
        transaction.on_commit(lambda: _enqueue(job))
    return job


def job_cancel(*, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop at its next progress report."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
    ):
        _ended([job.pk], JobStatus.CANCELLED)
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


@dataclass
class Claim:
    job: Job
    token: uuid.UUID


def _is_stale(job: Job, now) -> bool:
    return job.heartbeat_at is None or now - job.heartbeat_at > timedelta(seconds=settings.JOB_STALE_SECONDS)


def job_claim(*, job_id: int, worker_name: str = "") -> Claim | None:
    """Takes the job for this worker, or returns None when it must not run here (finished, cancelled, held by
    a live worker, or out of attempts)."""
    now = timezone.now()
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("job %s does not exist; message dropped", job_id)
        return None
    if job.status in TERMINAL_STATUSES:
        return None
    if job.status == JobStatus.RUNNING and not _is_stale(job, now):
        logger.info("job %s is held by a live worker (%s); not running it twice", job_id, job.worker_name)
        return None
    current = Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts)
    if job.cancel_requested:
        if current.update(status=JobStatus.CANCELLED, finished_at=now, worker_token=None):
            _ended([job.pk], JobStatus.CANCELLED)
        return None
    if job.attempts >= job.max_attempts:
        if current.update(
            status=JobStatus.FAILED,
            finished_at=now,
            worker_token=None,
            error=(job.error + "\n" if job.error else "")
            + f"Gave up after {job.attempts} attempts: the worker was lost each time (crash or out of memory).",
        ):
            _ended([job.pk], JobStatus.FAILED)
        return None
    token = uuid.uuid4()
    won = current.update(
        status=JobStatus.RUNNING,
        attempts=job.attempts + 1,
        worker_token=token,
        worker_name=worker_name[:200],
        heartbeat_at=now,
        started_at=job.started_at or now,
        run_started_at=now,
        run_started_done=job.progress_done,
    )
    if not won:  # another worker claimed it between our read and our update
        return None
    job.refresh_from_db()
    return Claim(job=job, token=token)


def _owned(claim: Claim):
    return Job.objects.filter(pk=claim.job.pk, worker_token=claim.token, status=JobStatus.RUNNING)


def _raise_why_not_updated(claim: Claim) -> None:
    job = Job.objects.filter(pk=claim.job.pk).values("cancel_requested", "worker_token", "status").first()
    if job and job["worker_token"] == claim.token and job["cancel_requested"]:
        raise JobCancelled()
    raise JobLost(f"job {claim.job.pk} is no longer held by this worker")


def job_report_progress(
    *, claim: Claim, done: int, total: int | None = None, message: str = "", checkpoint: dict | None = None
) -> None:
    """Stores progress (and the checkpoint to resume from) in one UPDATE; raises JobCancelled or JobLost when
    the job must stop."""
    fields: dict[str, Any] = {"progress_done": done, "heartbeat_at": timezone.now()}
    if total is not None:
        fields["progress_total"] = total
    if message:
        fields["progress_message"] = message[:200]
    if checkpoint is not None:
        fields["checkpoint"] = checkpoint
    if not _owned(claim).filter(cancel_requested=False).update(**fields):
        _raise_why_not_updated(claim)


def job_heartbeat(*, claim: Claim) -> bool:
    """Called by the worker's heartbeat thread during long steps. False once the job is no longer ours."""
    return bool(_owned(claim).update(heartbeat_at=timezone.now()))


def job_succeed(*, claim: Claim, result: dict) -> None:
    updated = _owned(claim).update(
        status=JobStatus.SUCCEEDED,
        result=result,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    if not updated:
        raise JobLost(f"job {claim.job.pk} finished here but is held elsewhere; result discarded")


def job_fail(*, claim: Claim, error: str) -> None:
    if _owned(claim).update(status=JobStatus.FAILED, error=error[-20_000:], finished_at=timezone.now()):
        _ended([claim.job.pk], JobStatus.FAILED)


def job_mark_cancelled(*, claim: Claim) -> None:
    if _owned(claim).update(status=JobStatus.CANCELLED, finished_at=timezone.now()):
        _ended([claim.job.pk], JobStatus.CANCELLED)


def jobs_requeue_stale(*, stale_seconds: int | None = None) -> list[int]:
    """Queues again every running job whose worker stopped sending heartbeats (killed, OOM, machine lost).

    The new attempt resumes from the job's checkpoint. A job whose cancellation was pending is cancelled.
    Returns the ids that were requeued.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALE_SECONDS if stale_seconds is None else stale_seconds)
    stale = Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    cancelled = list(Job.objects.filter(stale, cancel_requested=True).values_list("pk", flat=True))
    if Job.objects.filter(stale, cancel_requested=True, pk__in=cancelled).update(
        status=JobStatus.CANCELLED, finished_at=now, worker_token=None
    ):
        _ended(cancelled, JobStatus.CANCELLED)
    requeued = []
    for job in Job.objects.filter(stale, cancel_requested=False).only("pk", "attempts", "queue"):
        with transaction.atomic():
            if Job.objects.filter(stale, pk=job.pk, attempts=job.attempts).update(
                status=JobStatus.QUEUED, worker_token=None, progress_message="Requeued: worker lost"
            ):
                requeued.append(job.pk)
                transaction.on_commit(lambda job=job: _enqueue(job))
    if requeued:
        logger.warning("requeued stale jobs %s", requeued)
    return requeued
