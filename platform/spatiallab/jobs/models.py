from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from spatiallab.jobs.kinds import JOB_KINDS


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(models.Model):
    """One long-running piece of work (generation, export, training, evaluation, GRPO, demo).

    The row is the source of truth, not the broker: a worker claims it (worker_token), reports progress and a
    resumable checkpoint, and touches heartbeat_at; a redelivered or requeued message only runs it again if
    no live worker holds it, and `attempts` caps how often a crashing job can be restarted.
    """

    kind = models.CharField(max_length=40)
    queue = models.CharField(max_length=10, default="cpu")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    progress_message = models.CharField(max_length=200, blank=True)
    checkpoint = models.JSONField(default=dict, blank=True, help_text="Handler state to resume from.")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    worker_token = models.UUIDField(null=True, blank=True, editable=False)
    worker_name = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Where the current attempt started, so that rate and ETA measure this attempt, not a crash gap.
    run_started_at = models.DateTimeField(null=True, blank=True)
    run_started_done = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="job_recent_idx"),
            models.Index(fields=["status", "-created_at"], name="job_status_recent_idx"),
            models.Index(fields=["kind", "-created_at"], name="job_kind_recent_idx"),
            # The stale-job sweep: running jobs ordered by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def kind_label(self) -> str:
        kind = JOB_KINDS.get(self.kind)
        return kind.label if kind else self.kind

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def percent(self) -> float:
        if self.status == JobStatus.SUCCEEDED:
            return 100.0
        if not self.progress_total:
            return 0.0
        return min(100.0, 100.0 * self.progress_done / self.progress_total)

    def rate_per_second(self, now=None) -> float | None:
        """Units of progress per second in the current attempt."""
        if self.status != JobStatus.RUNNING or self.run_started_at is None:
            return None
        elapsed = ((now or timezone.now()) - self.run_started_at).total_seconds()
        done = self.progress_done - self.run_started_done
        if elapsed <= 0 or done <= 0:
            return None
        return done / elapsed

    def rate_display(self, now=None) -> str:
        """The current attempt's rate in the kind's unit: "12.5 pairs/min", "840.0 prompts/s"."""
        rate = self.rate_per_second(now)
        if rate is None:
            return "–"
        kind = JOB_KINDS.get(self.kind)
        unit = kind.unit if kind else "steps"
        if kind and kind.per_minute:
            return f"{rate * 60:.1f} {unit}/min"
        return f"{rate:.2f} {unit}/s"

    def eta(self, now=None) -> timedelta | None:
        rate = self.rate_per_second(now)
        if rate is None or not self.progress_total:
            return None
        return timedelta(seconds=max(0, self.progress_total - self.progress_done) / rate)


class MetricKind(models.TextChoices):
    TRAIN = "train", "Train"
    EVAL = "eval", "Eval"


class RunMetric(models.Model):
    """One metrics event of a training run (a reward run, a GRPO run): the curves' rows. A subclass adds `run`
    and a unique (run, step, kind) constraint: a resumed run reports the steps after its checkpoint again, stored
    once (jobs.runs.metric_record)."""

    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=5, choices=MetricKind.choices)
    values = models.JSONField(default=dict)

    class Meta:
        abstract = True
        ordering = ["step", "kind"]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} step {self.step}"
