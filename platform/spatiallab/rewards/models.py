"""Reward-model training runs: what was trained (a frozen dataset version, a base model folder, the full
configuration and the code version), its checkpoints and its live metric curves. The job does the work; the
run is the record a researcher compares and reproduces."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from spatiallab.jobs.models import JobStatus


class RewardRun(models.Model):
    name = models.CharField(max_length=200)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT,
                                        related_name="reward_runs")
    dataset_hash = models.CharField(max_length=64, help_text="The version's content hash when the run was created.")
    base_model = models.CharField(max_length=1000, help_text="Local folder of the vision-language backbone.")
    config = models.JSONField(default=dict, help_text='{"model": ModelConfig, "train": TrainConfig} as dicts.')
    code_version = models.CharField(max_length=100, blank=True, help_text="Git commit, else the package version.")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED,
                              help_text="Mirrors the training job.")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    output_dir = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="reward_runs")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class RewardCheckpoint(models.Model):
    run = models.ForeignKey(RewardRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=1000)
    metrics = models.JSONField(default=dict, blank=True, help_text="The last train and eval metrics at this step.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="reward_checkpoint_run_step_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class MetricKind(models.TextChoices):
    TRAIN = "train", "Train"
    EVAL = "eval", "Eval"


class RewardMetric(models.Model):
    run = models.ForeignKey(RewardRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=5, choices=MetricKind.choices)
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["step", "kind"]
        # A resumed run reports the steps after its checkpoint again: stored once (update_or_create).
        constraints = [models.UniqueConstraint(fields=["run", "step", "kind"], name="reward_metric_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} step {self.step}"
