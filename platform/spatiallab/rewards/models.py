"""Reward-model training runs: what was trained (a frozen dataset version, a base model folder, the full
configuration and the code version), its checkpoints and its live metric curves. The job does the work; the
run is the record a researcher compares and reproduces."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from spatiallab.jobs.models import JobStatus, RunMetric


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


class RewardMetric(RunMetric):
    run = models.ForeignKey(RewardRun, on_delete=models.CASCADE, related_name="metrics")

    class Meta(RunMetric.Meta):
        constraints = [models.UniqueConstraint(fields=["run", "step", "kind"], name="reward_metric_unique")]


class RewardEvaluation(models.Model):
    """Pairwise accuracy of one checkpoint on one split of a frozen dataset version (the paper's Table 1 cells
    plus a breakdown by relation type, with 95 % Wilson intervals), computed by an evaluate_reward job."""

    run = models.ForeignKey(RewardRun, on_delete=models.CASCADE, related_name="evaluations")
    # The checkpoint row goes when the trainer prunes its folder; the evaluation (and its step) stays.
    checkpoint = models.ForeignKey(RewardCheckpoint, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="evaluations")
    step = models.PositiveIntegerField()
    checkpoint_path = models.CharField(max_length=1000)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT,
                                        related_name="reward_evaluations")
    dataset_hash = models.CharField(max_length=64)
    split = models.CharField(max_length=20, default="test", blank=True, help_text="Empty: every entry.")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    report = models.JSONField(default=dict, blank=True,
                              help_text="pairs, overall, '1 edit', '2-3 edits', by_relation, mean_margin.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk}: run {self.run_id} step {self.step} on {self.dataset_version_id}/{self.split}"


class PairScore(models.Model):
    """One checkpoint's verdict on one generated pair: the score (mu) and uncertainty (sigma) of each image
    under the perfect prompt. margin > 0: the model prefers the candidate winner, as a correct pair should."""

    checkpoint = models.ForeignKey(RewardCheckpoint, on_delete=models.CASCADE, related_name="pair_scores")
    pair = models.ForeignKey("generation.Pair", on_delete=models.CASCADE, related_name="reward_scores")
    winner_mu = models.FloatField()
    winner_sigma = models.FloatField()
    loser_mu = models.FloatField()
    loser_sigma = models.FloatField()
    margin = models.FloatField(help_text="winner_mu - loser_mu.")
    spread = models.FloatField(help_text="sqrt(winner_sigma^2 + loser_sigma^2): the margin's standard deviation.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pair_id"]
        constraints = [models.UniqueConstraint(fields=["checkpoint", "pair"], name="pair_score_once")]

    def __str__(self) -> str:
        return f"pair {self.pair_id} under checkpoint {self.checkpoint_id}: margin {self.margin:+.3f}"

    @property
    def agrees(self) -> bool:
        return self.margin > 0

    @property
    def p_winner(self) -> float:
        """P(winner scores above loser) under the model's Gaussians."""
        import math

        return 0.5 * (1 + math.erf(self.margin / (max(self.spread, 1e-12) * math.sqrt(2))))


class ScoreRequestKind(models.TextChoices):
    UPLOAD = "upload", "Uploaded images"
    BEST_OF_N = "best_of_n", "Best of n samples"


class ScoreRequest(models.Model):
    """Scoring with a checkpoint, queued on a GPU worker: uploaded images (one prompt each), or n samples of a
    generator for one prompt re-ranked by score (best-of-n)."""

    kind = models.CharField(max_length=12, choices=ScoreRequestKind.choices)
    checkpoint = models.ForeignKey(RewardCheckpoint, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="score_requests")
    checkpoint_path = models.CharField(max_length=1000)
    prompt = models.TextField(blank=True, help_text="Best-of-n: the prompt sampled.")
    generator = models.ForeignKey("generation.Generator", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    n = models.PositiveSmallIntegerField(default=0, help_text="Best-of-n: samples drawn.")
    seed = models.BigIntegerField(default=0, help_text="Best-of-n: the first sample's seed (then seed + 1, ...).")
    images = models.JSONField(default=list, blank=True,
                              help_text='Uploads: [{"name": storage name, "prompt": text, "filename": ...}].')
    results = models.JSONField(default=list, blank=True,
                               help_text='[{"index", "prompt", "image", "seed", "mu", "sigma", "rank"}], best first.')
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"score request {self.pk} ({self.kind})"
